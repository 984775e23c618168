# The configs under configs/: compiled into meshlm_train (cmake/embed_configs.cmake) and
# installed to <prefix>/share/meshlm/configs, where `--config NAME` looks next to the binary.
include(GNUInstallDirs)
file(GLOB meshlm_config_files CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/configs/*.toml)
file(RELATIVE_PATH meshlm_installed_configs /${CMAKE_INSTALL_BINDIR} /${CMAKE_INSTALL_DATADIR}/meshlm/configs)
set(meshlm_builtin_configs_cpp ${CMAKE_CURRENT_BINARY_DIR}/builtin_configs.cpp)
add_custom_command(
  OUTPUT ${meshlm_builtin_configs_cpp}
  COMMAND ${CMAKE_COMMAND} -DCONFIG_DIR=${PROJECT_SOURCE_DIR}/configs -DOUT=${meshlm_builtin_configs_cpp}
          -DINSTALLED_DIR=${meshlm_installed_configs} -P ${PROJECT_SOURCE_DIR}/cmake/embed_configs.cmake
  DEPENDS ${meshlm_config_files} ${PROJECT_SOURCE_DIR}/cmake/embed_configs.cmake
  COMMENT "Embedding configs/*.toml"
  VERBATIM)
target_sources(meshlm_train PRIVATE ${meshlm_builtin_configs_cpp})

install(FILES ${meshlm_config_files} DESTINATION ${CMAKE_INSTALL_DATADIR}/meshlm/configs)
