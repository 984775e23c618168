# The include directives follow the layer graph declared in src/meshlm/CMakeLists.txt. The
# per-layer include roots already make a violation a compile error; this test also covers the
# files a build does not compile (cuda/ in a CPU-only build, headers nothing includes yet) and
# names file:line.
add_test(NAME build.layering
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/layering.py
                 ${PROJECT_BINARY_DIR}/meshlm_layers.txt ${PROJECT_SOURCE_DIR}/src/meshlm)
set_tests_properties(build.layering PROPERTIES LABELS unit)

# Every registered test carries exactly one tier label (see tests/CMakeLists.txt).
add_test(NAME build.tiers
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/tiers.py ${CMAKE_CTEST_COMMAND} ${PROJECT_BINARY_DIR})
set_tests_properties(build.tiers PROPERTIES LABELS unit)
