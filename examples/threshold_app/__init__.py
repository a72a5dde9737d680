"""An example radpacs callback app: the brightest blob of each CT image (see README.md)."""
