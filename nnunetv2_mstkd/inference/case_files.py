"""Find the cases of an input folder and the channel files each of them has.

nnU-Net names a case's channel files ``CASE_XXXX<file_ending>`` (``_0000`` is the
first channel of ``dataset.json``). A channel whose file is not in the folder is
*absent* for that case, as is every channel named with ``--missing`` (its file is
then not read at all, so a case predicted with ``--missing T1ce`` and the same case
without its ``_0001`` file give the same result).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class CaseFiles:
    """The channel files of one case.

    Attributes:
        case_id: nnU-Net's case identifier (the file name without ``_XXXX<file_ending>``).
        expected: Expected path of every channel's file, in channel order.
        files: The file to read per channel, or None for an absent channel.
        not_found: Channel indices whose file is not in the folder.
        excluded: Channel indices excluded with ``--missing`` (their files are not read).
        unexpected: Files named like this case's channels but with a channel index the model does not have.
    """

    case_id: str
    expected: list[str]
    files: list[str | None]
    not_found: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def on_disk(self) -> list[str]:
        """The case's files in the folder (the channels found, then files with unknown channel indices)."""
        return [p for i, p in enumerate(self.expected) if i not in self.not_found] + self.unexpected

    @property
    def absent(self) -> list[int]:
        """Indices of the channels predicted as absent (not found or excluded)."""
        return [i for i, f in enumerate(self.files) if f is None]

    def problem(self, channel_names: Sequence[str]) -> str | None:
        """Why this case cannot be predicted, or None when it can."""
        if self.unexpected:
            return (f"case {self.case_id}: files {', '.join(os.path.basename(f) for f in self.unexpected)} have a "
                    f"channel index the model does not know; it expects {len(channel_names)} channels "
                    f"({_channel_list(channel_names)}). Rename or remove those files.")
        if all(f is None for f in self.files):
            wanted = ", ".join(os.path.basename(f) for f in self.expected)
            excluded = ", ".join(channel_names[i] for i in self.excluded)
            why = f" ({excluded} excluded with --missing)" if excluded else ""
            return (f"case {self.case_id}: every channel is absent{why}; at least one of {wanted} is needed "
                    f"({_channel_list(channel_names)}).")
        return None

    def absent_reasons(self, channel_names: Sequence[str]) -> dict[str, str]:
        """Why each absent channel is absent: ``{"T1ce": "file X_0001.nii.gz absent", "FLAIR": "--missing"}``."""
        return {channel_names[i]: f"file {os.path.basename(self.expected[i])} absent" if i in self.not_found
                else "--missing" for i in self.absent}

    def describe(self, channel_names: Sequence[str]) -> str:
        """One line for the log, e.g. ``case X: predicting without T1ce (file X_0001.nii.gz absent)``."""
        if not self.absent:
            return f"case {self.case_id}: all channels present"
        parts = [f"{name} ({why})" for name, why in self.absent_reasons(channel_names).items()]
        return f"case {self.case_id}: predicting without {', '.join(parts)}"


def _channel_list(channel_names: Sequence[str]) -> str:
    return ", ".join(f"_{i:04d} {n}" for i, n in enumerate(channel_names))


#: Image endings beyond nnU-Net's reader/writers that a misnamed channel file may carry.
_OTHER_IMAGE_ENDINGS = (".nii", ".nii.gz", ".mhd", ".nhdr", ".dcm", ".tif", ".tiff")


def image_endings() -> tuple[str, ...]:
    """File endings that look like an image: every ending nnU-Net's reader/writers read, and a few more."""
    from nnunetv2.imageio.reader_writer_registry import LIST_OF_IO_CLASSES

    endings = {e.lower() for io in LIST_OF_IO_CLASSES for e in io.supported_file_endings}
    return tuple(sorted(endings | set(_OTHER_IMAGE_ENDINGS)))


def unrecognised_files(input_folder: str, file_ending: str) -> list[str]:
    """Files that look like images but are not named ``CASE_XXXX<file_ending>`` (hidden files aside).

    A channel file with a typo in its name (``CASE_001.nii.gz``, ``CASE_0001.nii`` where the
    model reads ``.nii.gz``, ``CASE_T1ce.nii.gz``) would otherwise leave that channel absent
    without a word; the caller refuses or, when told to, skips them.
    """
    pattern = re.compile(r".+_\d{4}" + re.escape(file_ending))
    endings = image_endings() + (file_ending.lower(),)
    return sorted(f for f in os.listdir(input_folder)
                  if not f.startswith(".") and f.lower().endswith(endings) and not pattern.fullmatch(f))


def unrecognised_message(input_folder: str, names: Sequence[str], file_ending: str,
                         channel_names: Sequence[str], skip_flag: str | None = "--allow_unrecognised_files") -> str:
    """The error for :func:`unrecognised_files`: the files, the naming rule and what to do."""
    skip = f", or pass {skip_flag} to skip them" if skip_flag else ""
    return (f"{input_folder}: {', '.join(names)} look like images but are not channel files of this model, which "
            f"reads CASE_XXXX{file_ending} with XXXX the channel index ({_channel_list(channel_names)}). A misnamed "
            f"channel file would be taken for an absent channel. Rename or move them{skip}.")


def case_from_files(files: Sequence[str], channel_names: Sequence[str], file_ending: str,
                    missing: Iterable[int] = ()) -> CaseFiles:
    """One case from its channel files as nnU-Net lists them (the present ``CASE_XXXX`` files, any order).

    The channel of each file is read from its ``_XXXX`` suffix, so a list that leaves a
    channel out describes a case without it.

    Raises:
        ValueError: If the list is empty, a file is not named ``CASE_XXXX<file_ending>``, or
            the files name different cases.
    """
    if not files:
        raise ValueError("A case needs at least one CASE_XXXX file; got an empty list.")
    channel_file = re.compile(r"(.+)_(\d{4})" + re.escape(file_ending))
    matches = [channel_file.fullmatch(os.path.basename(f)) for f in files]
    wrong = [f for f, m in zip(files, matches) if m is None]
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: not named CASE_XXXX{file_ending} (XXXX: channel index "
                         f"{_channel_list(channel_names)}).")
    case_ids = sorted({m.group(1) for m in matches})
    if len(case_ids) > 1:
        raise ValueError(f"The files {', '.join(files)} belong to different cases ({', '.join(case_ids)}).")
    folder, case_id, missing = os.path.dirname(files[0]), case_ids[0], set(missing)
    by_channel = {int(m.group(2)): f for f, m in zip(files, matches)}
    expected = [by_channel.get(i, os.path.join(folder, f"{case_id}_{i:04d}{file_ending}"))
                for i in range(len(channel_names))]
    not_found = [i for i in range(len(channel_names)) if i not in by_channel]
    chosen = [None if (i in missing or i in not_found) else p for i, p in enumerate(expected)]
    unexpected = [f for i, f in sorted(by_channel.items()) if i >= len(channel_names)]
    return CaseFiles(case_id, expected, chosen, not_found, sorted(missing - set(not_found)), unexpected)


def find_cases(input_folder: str, channel_names: Sequence[str], file_ending: str,
               missing: Iterable[int] = ()) -> list[CaseFiles]:
    """List the cases of ``input_folder`` with their channel files, sorted by case identifier.

    Case identifiers follow nnU-Net's rule: a file name minus its ``_XXXX<file_ending>``
    suffix. Files ending in ``file_ending`` without such a suffix are not cases and are
    skipped (:func:`unrecognised_files` lists them).

    Args:
        input_folder: Folder with ``CASE_XXXX<file_ending>`` files.
        channel_names: The model's channel names in channel order (``dataset.json``).
        file_ending: The model's file ending, e.g. ``.nii.gz``.
        missing: Channel indices to treat as absent in every case (``--missing``).

    Returns:
        One :class:`CaseFiles` per case; check :meth:`CaseFiles.problem` before predicting.

    Raises:
        FileNotFoundError: If the folder does not exist or holds no ``CASE_XXXX<file_ending>`` file.
    """
    if not os.path.isdir(input_folder):
        raise FileNotFoundError(f"Input folder {input_folder} does not exist.")
    channel_file = re.compile(r"(.+)_\d{4}" + re.escape(file_ending))
    by_case: dict[str, list[str]] = {}
    for name in sorted(os.listdir(input_folder)):
        match = channel_file.fullmatch(name)
        if match and not name.startswith("."):  # hidden: temporary files of an atomic write
            by_case.setdefault(match.group(1), []).append(os.path.join(input_folder, name))
    if not by_case:
        raise FileNotFoundError(f"No files named CASE_XXXX{file_ending} in {input_folder}. Input files must be named "
                                f"CASE_XXXX{file_ending} with XXXX the channel index ({_channel_list(channel_names)}).")
    return [case_from_files(by_case[c], channel_names, file_ending, missing) for c in sorted(by_case)]
