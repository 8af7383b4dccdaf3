include(tests/npy.cmake)
