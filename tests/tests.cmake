include(tests/npy.cmake)
include(tests/examples.cmake)
