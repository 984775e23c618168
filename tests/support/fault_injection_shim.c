// A test-only LD_PRELOAD library that injects disk faults: write() to a file whose path contains
// $MESHLM_FAULT_PATH, and rename() from or to such a path, fail with ENOSPC. Which calls fail is
// $MESHLM_FAULT_CALLS: "write", "rename" or "write,rename" (default: both). Without
// MESHLM_FAULT_PATH nothing fails. Used by the CLI tests of full disks under mpirun.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fault_on(const char* call, const char* path) {
  const char* pattern = getenv("MESHLM_FAULT_PATH");
  if (pattern == NULL || *pattern == '\0' || path == NULL) return 0;
  const char* calls = getenv("MESHLM_FAULT_CALLS");
  if (calls != NULL && strstr(calls, call) == NULL) return 0;
  return strstr(path, pattern) != NULL;
}

ssize_t write(int fd, const void* buf, size_t count) {
  static ssize_t (*real_write)(int, const void*, size_t) = NULL;
  if (real_write == NULL) real_write = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  if (fd > 2 && getenv("MESHLM_FAULT_PATH") != NULL) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = readlink(link, path, sizeof path - 1);
    if (n > 0) {
      path[n] = '\0';
      if (fault_on("write", path)) {
        errno = ENOSPC;
        return -1;
      }
    }
  }
  return real_write(fd, buf, count);
}

int rename(const char* from, const char* to) {
  static int (*real_rename)(const char*, const char*) = NULL;
  if (real_rename == NULL) real_rename = (int (*)(const char*, const char*))dlsym(RTLD_NEXT, "rename");
  if (fault_on("rename", from) || fault_on("rename", to)) {
    errno = ENOSPC;
    return -1;
  }
  return real_rename(from, to);
}
