# emu.cmake: convnet_emulated_cuda(target nn_variant) builds nn_cuda's
# sources as a static library `target` for the emulated device (see
# CMakeLists.txt here): the .cu files with their launches rewritten
# (rewrite.cmake) and compiled as C++ with emu.h, the .c files against the
# emulated runtime headers, plus runtime.c, queue.cpp and threads.cpp. nn_variant is nn
# (float) or nn_f64 (double). Needs C++ enabled at the top level.
set(_emu_dir ${CMAKE_CURRENT_LIST_DIR})

function(convnet_emulated_cuda target variant)
  set(src ${PROJECT_SOURCE_DIR}/nn_cuda/src)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}-src)
  file(GLOB cu_files CONFIGURE_DEPENDS ${src}/*.cu)
  file(GLOB c_files CONFIGURE_DEPENDS ${src}/*.c)
  set(cpp_files)
  foreach(cu ${cu_files})
    get_filename_component(name ${cu} NAME)
    add_custom_command(OUTPUT ${out}/${name}.cpp
      COMMAND ${CMAKE_COMMAND} -DIN=${cu} -DOUT=${out}/${name}.cpp -P ${_emu_dir}/rewrite.cmake
      DEPENDS ${cu} ${_emu_dir}/rewrite.cmake
      COMMENT "emu: rewriting the kernel launches of ${name} for ${target}"
      VERBATIM)
    list(APPEND cpp_files ${out}/${name}.cpp)
  endforeach()
  add_library(${target} STATIC ${cpp_files} ${c_files} ${_emu_dir}/runtime.c
              ${_emu_dir}/queue.cpp ${_emu_dir}/threads.cpp)
  target_include_directories(${target}
    PUBLIC ${PROJECT_SOURCE_DIR}/nn_cuda/include
    PRIVATE ${_emu_dir}/include ${_emu_dir} ${src})
  set_target_properties(${target} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  # The rewrite drops `ctx->stream`, so some launchers leave ctx unused.
  target_compile_options(${target} PRIVATE
    "$<$<COMPILE_LANGUAGE:CXX>:-include;emu.h;-Wall;-Wextra;-Wshadow;-Wno-unused-parameter>")
  if(CONVNET_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
  if(CONVNET_SANITIZE)
    target_compile_options(${target} PRIVATE
      "$<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${CONVNET_SANITIZE};-fno-omit-frame-pointer;-fno-sanitize-recover=all>")
  endif()
  target_link_libraries(${target} PUBLIC ${variant})
endfunction()
