# cmake -DIN=file.cu -DOUT=file.cu.cpp -P rewrite.cmake
# Turns each kernel launch `k<<<grid, block, shmem, stream>>>(` into
# `emu_launch(grid, block, k, ` (emu.h). One launch per line, as nn_cuda
# writes them.
file(READ "${IN}" src)
# The emulator has one stream: every launch must be on the context's.
string(REGEX MATCHALL "<<<" _launches "${src}")
string(REGEX MATCHALL ", ctx->stream>>>" _on_stream "${src}")
list(LENGTH _launches _n)
list(LENGTH _on_stream _m)
if(NOT _n EQUAL _m)
  message(FATAL_ERROR "${IN}: ${_n} launches, ${_m} of them on ctx->stream")
endif()
string(REGEX REPLACE "([A-Za-z_0-9]+)<<<([^,]+),([^,]+),[^\n]*>>>\\(" "emu_launch(\\2, \\3, \\1, "
       src "${src}")
if(src MATCHES "<<<")
  message(FATAL_ERROR "${IN}: a kernel launch that rewrite.cmake cannot turn into emu_launch")
endif()
file(WRITE "${OUT}" "${src}")
