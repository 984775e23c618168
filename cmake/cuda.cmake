# The optional CUDA backend. Without a CUDA compiler (or with -DMESHLM_CUDA=OFF) the build is
# CPU only and complete; with one, the CUDA sources under */cuda/ are compiled and linked, and
# `--device cuda` works wherever the program finds a GPU at run time.
set(MESHLM_HAVE_CUDA OFF)
if(MESHLM_CUDA)
  # nvcc is rarely on PATH: look where the toolkit installs by default.
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # CMake's default architecture (sm_75) is too old for bf16 tensor cores and `native` fails
    # on a machine without a GPU: H100 (sm_90) unless the caller says otherwise, e.g.
    # -DCMAKE_CUDA_ARCHITECTURES="80;90" for A100 and H100 (the kernels need sm_80 or newer).
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    # CMake 3.25 does not know nvcc's flag for C++20.
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION -std=c++20)
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION -std=c++20)
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(CMAKE_CUDA_FLAGS_RELEASE "-O3 -DNDEBUG")
    find_package(CUDAToolkit REQUIRED)
    # NCCL ships no CMake config.
    find_library(MESHLM_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
    find_path(MESHLM_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
    if(NOT MESHLM_NCCL_LIBRARY OR NOT MESHLM_NCCL_INCLUDE)
      message(FATAL_ERROR "CUDA found but not NCCL: install NCCL or configure with -DMESHLM_CUDA=OFF")
    endif()
    add_library(meshlm_nccl INTERFACE)
    target_link_libraries(meshlm_nccl INTERFACE ${MESHLM_NCCL_LIBRARY})
    target_include_directories(meshlm_nccl INTERFACE ${MESHLM_NCCL_INCLUDE})
    set(MESHLM_HAVE_CUDA ON)
    message(STATUS "meshlm: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, sm ${CMAKE_CUDA_ARCHITECTURES})")
  else()
    message(STATUS "meshlm: no CUDA compiler found, CPU-only build")
  endif()
endif()
