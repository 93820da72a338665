"""Networks: the transformer-augmented nnU-Net (``mstkd_unet``) and its transformer block (``transformer``)."""
from nnunetv2_mstkd.network.mstkd_unet import MSTKDUNet, build_mstkd_network, token_stride
from nnunetv2_mstkd.network.transformer import TransformerBlock, TransformerLayer, attention_probabilities

__all__ = [
    "MSTKDUNet",
    "TransformerBlock",
    "TransformerLayer",
    "attention_probabilities",
    "build_mstkd_network",
    "token_stride",
]
