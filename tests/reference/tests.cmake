# meshlm against PyTorch: meshlm_reference_dump writes a small model's initial weights, a batch,
# the logits/loss, the gradients and ten AdamW steps; check_against_torch.py recomputes them
# with an independent PyTorch GPT-2 (tests/reference/torch_gpt.py) and compares.
# Each config is two tests: reference.<name>.dump (a fixture setup) and reference.<name>.torch,
# so running the check alone (ctest -R reference.<name>.torch) also runs its dump first.
add_executable(meshlm_reference_dump ${CMAKE_CURRENT_LIST_DIR}/dump_reference.cpp)
target_link_libraries(meshlm_reference_dump PRIVATE meshlm)

set(MESHLM_REFERENCE_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with PyTorch for the reference tests")

function(meshlm_reference_test name)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/reference/${name})
  add_test(NAME reference.${name}.dump
           COMMAND $<TARGET_FILE:meshlm_reference_dump> ${dir} ${ARGN})
  add_test(NAME reference.${name}.torch
           COMMAND ${MESHLM_REFERENCE_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_against_torch.py ${dir})
  set_tests_properties(reference.${name}.dump PROPERTIES
    FIXTURES_SETUP reference_${name} ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 120 LABELS reference)
  set_tests_properties(reference.${name}.torch PROPERTIES
    FIXTURES_REQUIRED reference_${name} ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 300 LABELS reference)
endfunction()

# Awkward sizes: a prime vocabulary, 3 heads of 16, T shorter than n_positions.
meshlm_reference_test(awkward --vocab 97 --n-positions 16 --n-embd 48 --n-head 3 --n-layer 2
                      --batch 3 --seq 13 --seed 7 --steps 10)
# Byte-level sizes with full-length sequences.
meshlm_reference_test(bytes --vocab 256 --n-positions 32 --n-embd 64 --n-head 4 --n-layer 3
                      --batch 4 --seq 32 --seed 1337 --steps 10)
