#include <pybind11/pybind11.h>
PYBIND11_MODULE(_step, m) { m.attr("ENCODING_VERSION") = 1; }
