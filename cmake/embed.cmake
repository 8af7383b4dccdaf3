# Turns a text file into a C source defining `const char NAME[]` and
# `const unsigned long NAME_len`, so the prelude ships inside the library.
# Usage: cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN} by cmake/embed.cmake; do not edit */\n"
     "const char ${NAME}[] = {${bytes} 0};\nconst unsigned long ${NAME}_len = ${len};\n")
