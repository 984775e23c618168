add_test(NAME cli.bad_input COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/bad_input.sh $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(cli.bad_input PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300)
