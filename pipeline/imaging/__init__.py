"""Image files, colour conversion and the MATLAB-exact resize: pixels in, pixels out, no models."""
