// Test-only LD_PRELOAD library: makes the file system under $MESHLM_TEST_READONLY_PREFIX behave
// as if mounted read-only (EROFS from every call that would change it), because chmod cannot
// produce that fault for root. Reads and calls on other paths go through unchanged.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Whether `path` (absolute, or relative to the working directory) lies under the prefix.
static int read_only(const char* path) {
  const char* prefix = getenv("MESHLM_TEST_READONLY_PREFIX");
  if (!prefix || !*prefix || !path) return 0;
  char full[4096];
  if (path[0] == '/') {
    snprintf(full, sizeof full, "%s", path);
  } else {
    char cwd[2048];
    if (!getcwd(cwd, sizeof cwd)) return 0;
    snprintf(full, sizeof full, "%s/%s", cwd, path);
  }
  const size_t n = strlen(prefix);
  return strncmp(full, prefix, n) == 0 && (full[n] == '\0' || full[n] == '/');
}

static int writes(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0; }

static int refuse(void) {
  errno = EROFS;
  return -1;
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

int mkdir(const char* path, mode_t mode) { return read_only(path) ? refuse() : NEXT(mkdir)(path, mode); }
int mkdirat(int dirfd, const char* path, mode_t mode) {
  return read_only(path) ? refuse() : NEXT(mkdirat)(dirfd, path, mode);
}
int rename(const char* from, const char* to) {
  return read_only(from) || read_only(to) ? refuse() : NEXT(rename)(from, to);
}
int unlink(const char* path) { return read_only(path) ? refuse() : NEXT(unlink)(path); }
int rmdir(const char* path) { return read_only(path) ? refuse() : NEXT(rmdir)(path); }

#define OPEN_SHIM(name)                                        \
  int name(const char* path, int flags, ...) {                 \
    va_list ap;                                                \
    va_start(ap, flags);                                       \
    const mode_t mode = (mode_t)va_arg(ap, int);               \
    va_end(ap);                                                \
    if (writes(flags) && read_only(path)) return refuse();     \
    return NEXT(name)(path, flags, mode);                      \
  }
OPEN_SHIM(open)
OPEN_SHIM(open64)

#define OPENAT_SHIM(name)                                      \
  int name(int dirfd, const char* path, int flags, ...) {      \
    va_list ap;                                                \
    va_start(ap, flags);                                       \
    const mode_t mode = (mode_t)va_arg(ap, int);               \
    va_end(ap);                                                \
    if (writes(flags) && read_only(path)) return refuse();     \
    return NEXT(name)(dirfd, path, flags, mode);               \
  }
OPENAT_SHIM(openat)
OPENAT_SHIM(openat64)

int creat(const char* path, mode_t mode) { return read_only(path) ? refuse() : NEXT(creat)(path, mode); }

#define FOPEN_SHIM(name)                                                          \
  FILE* name(const char* path, const char* mode) {                                \
    if (mode && (mode[0] != 'r' || strchr(mode, '+')) && read_only(path)) {       \
      errno = EROFS;                                                              \
      return NULL;                                                                \
    }                                                                             \
    return NEXT(name)(path, mode);                                                \
  }
FOPEN_SHIM(fopen)
FOPEN_SHIM(fopen64)
