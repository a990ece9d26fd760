# Marks bpcore/ as a Cython package so the kernels can cimport bpcore._math.
