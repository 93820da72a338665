"""Per-epoch loss-term logging: the log line's reference scale and the loss_terms.png figure."""
import numpy as np
import pytest

from nnunetv2_mstkd.training.term_logging import fraction_summary, log_epoch_terms, plot_loss_terms, seg_headroom


def test_terms_are_read_against_seg_plus_one():
    # L_seg = -0.6: its distance from the minimum -1 is 0.4; mstkd 0.02 is 5 % of it, dmld 0.1 is 25 %.
    assert float(seg_headroom(-0.6)) == pytest.approx(0.4)
    line = fraction_summary({"loss_seg": -0.6, "loss_mstkd": 0.02, "loss_dmld": 0.1, "loss_disc": 1.2})
    assert line == "loss terms: seg -0.6000, mstkd 0.0200 (5.0% of seg+1), dmld 0.1000 (25.0% of seg+1), disc 1.2000"


def test_log_epoch_terms_pads_missing_epochs():
    logging = {"loss_seg": [0.1]}
    log_epoch_terms(logging, {"loss_seg": 0.2, "loss_att": 0.5}, 1)
    assert logging["loss_seg"] == [0.1, 0.2]
    assert np.isnan(logging["loss_att"][0]) and logging["loss_att"][1] == 0.5


def test_plot_is_a_readable_png_even_under_nnunets_global_style(tmp_path):
    import matplotlib.image
    import seaborn as sns

    sns.set(font_scale=2.5)  # what nnU-Net's progress plot leaves behind in the training process
    try:
        epochs = 6
        logging = {"loss_seg": list(np.linspace(0.2, -0.6, epochs)), "loss_mstkd": [0.03] * epochs,
                   "loss_dmld": list(np.linspace(0.001, 0.02, epochs)), "loss_gsme": [0.01] * epochs,
                   "loss_att": [1e-3] * epochs, "loss_feat": [0.7] * epochs, "loss_disc": [1.3] * epochs}
        path = plot_loss_terms(logging, str(tmp_path))
    finally:
        sns.reset_orig()
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (1100, 1100)
    assert image[..., :3].std() > 0.05  # not blank
