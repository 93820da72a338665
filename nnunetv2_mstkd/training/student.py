"""The MST-KD student: modality dropout plus distillation from a frozen full-modality teacher (METHOD §4).

:class:`MSTKDStudentMixin` goes in front of ``nnUNetTrainer`` in a trainer class.
Settings are class attributes (nnU-Net rebuilds trainers from their class name):
the loss weights, whether a teacher is used, and the teacher trainer's name.
"""
from __future__ import annotations

import os
from dataclasses import asdict

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch._dynamo import OptimizedModule

from nnunetv2_mstkd.atomic_io import atomic_path
from nnunetv2_mstkd.network.discriminator import StyleDiscriminator
from nnunetv2_mstkd.training.discriminator_training import (
    broadcast_module,
    discriminator_step,
    make_discriminator_optimizer,
)
from nnunetv2_mstkd.training.distillation import DistillationWeights, distillation_terms
from nnunetv2_mstkd.training.modality_dropout import ModalityDropoutMixin
from nnunetv2_mstkd.training.network_mixin import MSTKDNetworkMixin
from nnunetv2_mstkd.training.teacher import (
    TeacherInfo,
    default_teacher_folders,
    find_teacher_checkpoint,
    load_frozen_teacher,
)
from nnunetv2_mstkd.training.term_logging import fraction_summary, log_epoch_terms, plot_loss_terms

#: Distillation terms a student step logs (as ``loss_<name>``), weighted families first.
LOGGED_TERMS = ("mstkd", "dmld", "gsme", "att", "feat", "prob", "lskd", "gram", "adv")


def host_scalars(values: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Scalar tensors as float32 numpy scalars, copied to the host together.

    One device-to-host copy per step instead of one per term, and float32 whatever the tensors'
    dtype (a bfloat16 term from CPU autocast has no numpy dtype).
    """
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()]).cpu().numpy()
    return {k: stacked[i] for i, k in enumerate(values)}


def unwrap(network: nn.Module) -> nn.Module:
    """The bare network inside DDP and ``torch.compile`` wrappers."""
    if isinstance(network, nn.parallel.DistributedDataParallel):
        network = network.module
    return network._orig_mod if isinstance(network, OptimizedModule) else network


def forward_with_aux_through(wrapper: nn.Module, x: torch.Tensor):
    """``(out, aux)`` of the MST-KD network inside ``wrapper`` (e.g. DistributedDataParallel), called through it.

    DDP all-reduces gradients only for a forward that goes through the wrapper, whose
    ``forward`` returns the network output alone; the network's ``aux_sink`` hands the
    aux dict (attention maps, features) out of that call.
    """
    net = unwrap(wrapper)
    net.aux_sink = []
    try:
        out = wrapper(x)
        return out, net.aux_sink[0]
    finally:
        net.aux_sink = None


class MSTKDStudentMixin(ModalityDropoutMixin, MSTKDNetworkMixin):
    """Student trainer logic. Use as ``class T(MSTKDStudentMixin, nnUNetTrainer)``.

    Class attributes:
        use_teacher: False trains the same network with modality dropout and no teacher (``_noKD``).
        init_from_teacher: Start the student from the teacher's weights, so that student and teacher
            channels correspond from the first step (an independently initialised student's channel i
            means nothing in the teacher, which every feature-level term depends on).
        teacher_trainer_name: Trainer whose ``checkpoint_final.pth`` is the default teacher. A short
            schedule variant first looks for the teacher of the same schedule (``..._5ep25it``).
        lambda_att, lambda_feat, lambda_prob, lambda_lskd, lambda_gram, lambda_adv: term weights (see
            :class:`~nnunetv2_mstkd.training.distillation.DistillationWeights`).
        kd_temperature, ramp_fraction: T of the logit-standardised KL and E_r / num_epochs.
        discriminator_channels: Width of the style discriminator's first layer.
    """

    use_teacher: bool = True
    init_from_teacher: bool = True
    teacher_trainer_name: str = "nnUNetTrainerMSTKDTeacher"
    lambda_att: float = DistillationWeights.att
    lambda_feat: float = DistillationWeights.feat
    lambda_prob: float = DistillationWeights.prob
    lambda_lskd: float = DistillationWeights.lskd
    lambda_gram: float = DistillationWeights.gram
    lambda_adv: float = DistillationWeights.adv
    kd_temperature: float = DistillationWeights.temperature
    ramp_fraction: float = DistillationWeights.ramp_fraction
    discriminator_channels: int = 32

    teacher: nn.Module | None = None
    teacher_info: TeacherInfo | None = None
    discriminator: nn.Module | None = None
    discriminator_optimizer: torch.optim.Optimizer | None = None

    def distillation_weights(self) -> DistillationWeights:
        """This trainer's term weights, from its class attributes."""
        return DistillationWeights(self.lambda_att, self.lambda_feat, self.lambda_prob, self.lambda_lskd,
                                   self.lambda_gram, self.lambda_adv, self.kd_temperature, self.ramp_fraction)

    # ---- set-up -------------------------------------------------------------------------------------------
    def initialize(self):
        was = self.was_initialized
        super().initialize()
        if was or not self.use_teacher:
            return
        # Only the attention term reads queries and keys; without it no network hands them out.
        unwrap(self.network).aux_attentions = bool(self.lambda_att)
        if not self.training_finished():
            # A resumed run (--c) loads its own checkpoint after initialize(), which overrides the weights.
            self._attach_teacher(initialise_student=self.init_from_teacher)
        if self.lambda_adv:
            channels = unwrap(self.network).encoder.output_channels[-1]
            self.discriminator = StyleDiscriminator(channels, len(self.configuration_manager.patch_size),
                                                    self.discriminator_channels).to(self.device)
            self.discriminator_optimizer = make_discriminator_optimizer(self.discriminator)
            if self.is_ddp:
                broadcast_module(self.discriminator)

    def training_finished(self) -> bool:
        """True when this fold has ``checkpoint_final.pth``: validating or re-exporting it needs no teacher."""
        return os.path.isfile(os.path.join(self.output_folder, "checkpoint_final.pth"))

    def _attach_teacher(self, initialise_student: bool) -> None:
        self.teacher, self.teacher_info = self._load_teacher()
        self.teacher.aux_attentions = bool(self.lambda_att)
        where = (f"$nnUNet_results/{self.teacher_info.checkpoint}" if self.teacher_info.relative_to
                 else self.teacher_info.checkpoint)
        self.print_to_log_file(f"Frozen teacher: {where} (sha256 {self.teacher_info.sha256[:16]}..., trainer "
                               f"{self.teacher_info.trainer_name}, fold {self.teacher_info.fold})")
        if initialise_student:
            unwrap(self.network).load_state_dict(self.teacher.state_dict())
            self.print_to_log_file("Student initialised from the teacher's weights.")

    def ensure_teacher(self) -> None:
        """Load the frozen teacher if a distilling step needs it and it is not loaded yet.

        ``initialize`` loads it (and starts the student from it) unless the fold is finished; a finished
        fold trained further keeps its own weights and gets the teacher here.
        """
        if self.distils() and self.teacher is None:
            self._attach_teacher(initialise_student=False)

    def on_train_start(self):
        super().on_train_start()
        self.ensure_teacher()
        self.report_start_weights()

    def report_start_weights(self) -> list[str]:
        """Log, at the start of a new run, which weight tensors differ from the teacher's; returns their keys.

        The student starts from the teacher, but ``nnUNetv2_train -pretrained_weights`` copies its file over
        that afterwards (every key but the segmentation layers, see :mod:`~nnunetv2_mstkd.training.pretrained`);
        this line makes the replacement visible.
        """
        if self.teacher is None or self.current_epoch != 0 or not self.init_from_teacher:
            return []
        student, teacher = unwrap(self.network).state_dict(), self.teacher.state_dict()
        differ = [k for k, v in student.items() if k in teacher and not torch.equal(v, teacher[k])]
        if differ:
            self.print_to_log_file(f"{len(differ)} of {len(student)} weight tensors differ from the teacher's (e.g. "
                                   f"-pretrained_weights replaced them); the teacher still distils.")
        else:
            self.print_to_log_file(f"Student starts from the teacher's weights (all {len(student)} tensors).")
        return differ

    def _teacher_candidates(self) -> list[str]:
        from nnunetv2.paths import nnUNet_results

        names = [self.teacher_trainer_name]
        suffix = getattr(self, "schedule_suffix", "")
        if suffix:
            names.insert(0, self.teacher_trainer_name + suffix)
        return default_teacher_folders(str(nnUNet_results), self.plans_manager.dataset_name, names,
                                       self.plans_manager.plans_name, self.configuration_name)

    def _load_teacher(self):
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        suffix = getattr(self, "schedule_suffix", "")
        command = (f"nnUNetv2_train {self.plans_manager.dataset_name} {self.configuration_name} {self.fold} "
                   f"-p {self.plans_manager.plans_name} -tr {self.teacher_trainer_name}{suffix}")
        path = find_teacher_checkpoint(self._teacher_candidates(), self.fold, command)

        def build(trainer_name):
            teacher_class = recursive_find_trainer_class_by_name(trainer_name or self.teacher_trainer_name)
            return teacher_class.build_network_architecture(
                self.plans_manager, self.configuration_manager, self.num_input_channels,
                self.label_manager.num_segmentation_heads, False)

        return load_frozen_teacher(path, build, self.plans_manager.plans, self.dataset_json,
                                   self.configuration_name, self.device)

    # ---- training -----------------------------------------------------------------------------------------
    #: ``torch.compile`` backend of the student's and the teacher's aux forwards under ``nnUNet_compile``.
    compile_backend: str = "inductor"

    def _forward_with_aux(self, role: str, net: nn.Module):
        """``net.forward_with_aux``, compiled once per role when nnU-Net compiles (CUDA and ``nnUNet_compile``).

        nnU-Net compiles ``self.network``, whose ``forward`` the student's step does not call
        (it needs the attention maps and features too), and knows nothing of the frozen teacher,
        whose forward is the largest part of what distillation adds to a step; so both aux
        forwards are compiled here, the student's as ``"student"``, the teacher's as ``"teacher"``.
        """
        if not self._do_i_compile():
            return net.forward_with_aux
        compiled = self.__dict__.setdefault("_compiled_forwards", {})
        if role not in compiled:
            # fullgraph: a graph break would silently split the step and cost its speed
            compiled[role] = torch.compile(net.forward_with_aux, backend=self.compile_backend, fullgraph=True)
        return compiled[role]

    def _student_forward(self, x: torch.Tensor):
        if self.is_ddp:
            return forward_with_aux_through(self.network, x)
        return self._forward_with_aux("student", unwrap(self.network))(x)

    def teacher_forward(self, data: torch.Tensor):
        """The frozen teacher's output and aux dict for a full-modality batch, without gradient.

        Compiled like the student's forward when nnU-Net compiles; the caller sets autocast.
        """
        with torch.no_grad():
            return self._forward_with_aux("teacher", self.teacher)(data)

    def distils(self) -> bool:
        """True when some distillation term has a weight (``_noKD`` and ``_initOnly`` have none)."""
        w = self.distillation_weights()
        return self.use_teacher and any((w.att, w.feat, w.prob, w.lskd, w.gram, w.adv))

    def train_step(self, batch: dict) -> dict:
        if not self.distils():
            # modality dropout alone (nnU-Net's step on the dropped input); no teacher forward needed
            return super().train_step(batch)
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = [t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list) \
            else target.to(self.device, non_blocking=True)
        x_student, _ = self.drop_modalities(data)
        self.teacher.eval()
        self.optimizer.zero_grad(set_to_none=True)
        amp = torch.autocast(self.device.type, enabled=self.device.type == "cuda")
        with amp:
            z_t, aux_t = self.teacher_forward(data)
            z_s, aux_s = self._student_forward(x_student)
            l_seg = self.loss(z_s, target)
        terms = distillation_terms(z_s, aux_s, z_t, aux_t, self.label_manager.has_regions,
                                   self.distillation_weights(), self.current_epoch, self.num_epochs,
                                   self.discriminator)
        total = l_seg + terms["mstkd"] + terms["dmld"] + terms["gsme"]
        style_pair = (aux_t["transformer_outputs"][-1], aux_s["transformer_outputs"][-1]) \
            if self.discriminator is not None else None
        # The teacher's maps that no term saved for backward are freed before it, not after.
        del z_t, aux_t, z_s, aux_s
        params = self.network.parameters()
        if self.grad_scaler is not None:
            self.grad_scaler.scale(total).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(params, 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            total.backward()
            torch.nn.utils.clip_grad_norm_(params, 12)
            self.optimizer.step()
        logged = {"loss": total, "loss_seg": l_seg}
        logged.update((f"loss_{k}", terms[k]) for k in LOGGED_TERMS if k in terms)
        if style_pair is not None:
            logged["loss_disc"] = discriminator_step(self.discriminator, self.discriminator_optimizer,
                                                     *style_pair, sync_gradients=self.is_ddp)
        return host_scalars(logged)

    def on_train_epoch_end(self, train_outputs: list[dict]):
        super().on_train_epoch_end(train_outputs)
        keys = [k for k in train_outputs[0] if k.startswith("loss_")] if train_outputs else []
        means = {k: float(np.mean([o[k] for o in train_outputs])) for k in keys}
        if self.is_ddp:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, means)
            means = {k: float(np.mean([g[k] for g in gathered])) for k in means}
        if means:
            log_epoch_terms(self.logger.local_logger.my_fantastic_logging, means, self.current_epoch)
            self.print_to_log_file(fraction_summary(means))

    def on_epoch_end(self):
        super().on_epoch_end()
        if self.local_rank == 0 and self.distils():
            plot_loss_terms(self.logger.local_logger.my_fantastic_logging, self.output_folder)

    # ---- checkpoints --------------------------------------------------------------------------------------
    def save_checkpoint(self, filename: str) -> None:
        super().save_checkpoint(filename)
        if self.local_rank != 0 or self.disable_checkpointing or not self.use_teacher:
            return
        # nnU-Net writes its own keys; ours are added to the same file, replaced atomically.
        checkpoint = torch.load(filename, map_location="cpu", weights_only=False)
        checkpoint["mstkd"] = {
            "teacher": asdict(self.teacher_info) if self.teacher_info else None,
            "discriminator": self.discriminator.state_dict() if self.discriminator is not None else None,
            "discriminator_optimizer": self.discriminator_optimizer.state_dict()
            if self.discriminator_optimizer is not None else None,
        }
        with atomic_path(filename) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        checkpoint = filename_or_checkpoint
        if isinstance(checkpoint, str):
            checkpoint = torch.load(checkpoint, map_location=self.device, weights_only=False)
        super().load_checkpoint(filename_or_checkpoint)
        extra = checkpoint.get("mstkd") or {}
        if self.discriminator is not None and extra.get("discriminator") is not None:
            self.discriminator.load_state_dict(extra["discriminator"])
            self.discriminator_optimizer.load_state_dict(extra["discriminator_optimizer"])
        elif self.discriminator is not None:
            self.print_to_log_file("Checkpoint has no discriminator state; the discriminator starts afresh.")
        if self.discriminator is not None and self.is_ddp:
            broadcast_module(self.discriminator)
