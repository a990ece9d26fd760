# The kernels of _kernels.pyx, compiled with -march=x86-64-v4 by setup.py;
# python/_dispatch.py imports this module on CPUs that support it.
include "_kernels.pyx"
