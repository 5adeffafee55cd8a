"""FashionViewer: look at what fashion-vision models see."""

__version__ = "0.1.0"
