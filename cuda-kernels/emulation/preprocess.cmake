# cmake -DIN=kernel.cu -DOUT=kernel.cpp -P preprocess.cmake
# The two CUDA constructs that no header can give g++, rewritten textually (everything else in the
# .cu file is compiled as it is, against cuda_runtime.h of this folder):
#   kernel<<<grid, block, smem, stream>>>(args)  ->  kernel >> gs_emu::Config(grid, block, smem, stream) << gs_emu::pack(args)
#   extern __shared__ [__align__(n)] T name[];   ->  T* name = static_cast<T*>(gs_emu::dynamic_shared());
# A #line directive keeps compiler messages pointing at the .cu file.
file(READ "${IN}" text)
string(REPLACE "<<<" " >> gs_emu::Config(" text "${text}")
string(REPLACE ">>>(" ") << gs_emu::pack(" text "${text}")
string(REGEX REPLACE "extern __shared__ (__align__\\([0-9]+\\) )?([^;\\[]+) ([A-Za-z_][A-Za-z0-9_]*)\\[\\];"
       "\\2* \\3 = static_cast<\\2*>(gs_emu::dynamic_shared());" text "${text}")
if(text MATCHES "<<<|>>>|extern __shared__")
  message(FATAL_ERROR "preprocess.cmake: ${IN} has a launch or dynamic shared array this rewrite does not understand")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${text}")
# Rewrite only on change: the compile step depends on this file's time stamp.
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
