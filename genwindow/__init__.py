"""genwindow: the generalization window of diffusion models, in closed form and on U-Nets.

Subpackages: ``theory`` (closed forms), ``rfm`` (finite-size random-features score model),
``schedules`` (learning-rate shapes and controllers shared by every kind of run), ``unet``
(trainer on real images), ``report`` (tables and figures). The command line is
``genwindow`` (see ``genwindow --help``).
"""

__version__ = "0.1.0"
