/* The integer codes of activations and costs: defined here once.
 *
 * _math.pxd declares them for the kernels' per-example math; _kernels.pyx
 * re-exports them to Python as the cpdef enums ``Activation`` and ``Cost``,
 * from which python/_config.py reads the names (the member name in lower case)
 * and their order.  tests/test_codes.py ties the names to the codes and to the
 * reference's tables.
 */
#ifndef BPCORE_CODES_H
#define BPCORE_CODES_H

enum bp_activation {
    IDENTITY = 0,
    SIGMOID = 1,
    TANH = 2,
    RELU = 3,
    LEAKY_RELU = 4,
    SOFTMAX = 5
};

enum bp_cost {
    QUADRATIC = 0,
    SQUARED_ERROR = 1,
    CROSS_ENTROPY = 2,
    LOG_LIKELIHOOD = 3
};

#endif
