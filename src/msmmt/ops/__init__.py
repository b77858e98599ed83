"""Image operations on arrays: face landmarks and alignment, magnification, dynamic image, flow and strain, resizing."""
