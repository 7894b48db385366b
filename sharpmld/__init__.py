"""sharpmld: turn folders of photos into 3D Gaussian splats with Apple's SHARP model."""

__version__ = "0.1.0"
