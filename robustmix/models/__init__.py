"""Model registry. Every model takes pixels in [0, 1] and normalises them in its first layer.

`build_model(name, ...)` is the one way models are made, by the trainer and by the checkpoint
loader alike, so a checkpoint's metadata (incl. `model_options`) is enough to rebuild it.

Manifold mixup needs the model's cooperation: every registered model exposes `stages()`, a list of
callables whose composition is `forward`; mixing may happen at the input of any stage (stage 0's
input is the image itself). This follows the Manifold Mixup authors' choice of mixing points
(input, after the first and second residual groups) without the model knowing about mixing.

    normalize.py Normalize, the first layer of every model
    core.py      the registry, build_model, run_stages, scale_head (a planted masked model)
    small.py     SmallCNN (foundation), LeNet-5
    resnets.py   PreAct ResNet-18 (the mixup paper's CIFAR model), WideResNet-28-10
    imagenet.py  torchvision's ImageNet ResNets (18/50/101) for ImageFolder data at larger sizes
    whiten.py    the fast recipe's network (airbench94-style, a data-initialised whitening stem)
    predict.py   logits and top-k error in batches, eval_mode, percent_wrong
    imported.py  ImportedModel: a network from elsewhere behind [0, 1] pixels, normalisation, class order
    foreign.py   torchvision / timm / program networks rebuilt for an imported checkpoint
    programs.py  TorchScript and torch.export programs, read without running pickled code

May import: runtime, data.
"""

from .core import MODELS, build_model, model_options, run_stages, scale_head
from .imagenet import TorchvisionResNet
from .normalize import Normalize
from .resnets import PreActBlock, PreActResNet, WideResNet
from .small import FastCNN, LeNet5, SmallCNN

__all__ = ["MODELS", "Normalize", "build_model", "model_options", "run_stages", "scale_head", "TorchvisionResNet",
           "PreActBlock", "PreActResNet", "WideResNet", "LeNet5", "SmallCNN", "FastCNN"]
