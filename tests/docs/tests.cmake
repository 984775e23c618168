# Every meshlm command that README.md and docs/*.md show runs and exits 0 (shrunk to a tiny
# model and two steps; templates and GPU lines are skipped): the docs cannot drift from the program.
add_test(NAME docs.commands COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/doc_commands.py $<TARGET_FILE:meshlm_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(docs.commands PROPERTIES TIMEOUT 600 LABELS slow)
