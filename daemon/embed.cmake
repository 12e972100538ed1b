# embed.cmake: writes OUTPUT, a C file defining `const char NAME[]` that
# holds the bytes of INPUT plus a terminating NUL. Run with cmake -P; used
# to compile daemon/openapi.json into the daemon (C11 has no #embed).
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
get_filename_component(name "${INPUT}" NAME)
file(WRITE "${OUTPUT}"
  "/* Generated from ${name} by embed.cmake at build time; do not edit. */\n"
  "const char ${NAME}[] = {${body}0x00};\n")
