// A test-only LD_PRELOAD library that injects file-system faults, for the faults a test cannot
// make otherwise as root (chmod does not stop root; a full disk must not be the machine's):
//   MESHLM_FAULT_PATH   the calls on a path containing this string fail (unset: nothing fails);
//                       a relative path is taken from the working directory first
//   MESHLM_FAULT_ERRNO  how they fail: ENOSPC (a full disk, the default), EROFS (a read-only
//                       file system), EIO or EDQUOT
//   MESHLM_FAULT_CALLS  which calls fail, comma-separated (default: all of them):
//                       open    opening for writing: open/openat with a writing flag, creat,
//                                fopen in a writing mode (reading always works)
//                       write   write() to a file opened earlier
//                       rename, mkdir, unlink, rmdir
// A read-only file system is MESHLM_FAULT_ERRNO=EROFS with the default calls; a disk that fills
// up during a checkpoint is ENOSPC with "write" or "rename".
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

static int fault_errno(void) {
  const char* name = getenv("MESHLM_FAULT_ERRNO");
  if (name == NULL || strcmp(name, "ENOSPC") == 0) return ENOSPC;
  if (strcmp(name, "EROFS") == 0) return EROFS;
  if (strcmp(name, "EIO") == 0) return EIO;
  if (strcmp(name, "EDQUOT") == 0) return EDQUOT;
  return ENOSPC;
}

// Whether `call` on `path` is to fail.
static int faulty(const char* call, const char* path) {
  const char* pattern = getenv("MESHLM_FAULT_PATH");
  if (pattern == NULL || *pattern == '\0' || path == NULL) return 0;
  const char* calls = getenv("MESHLM_FAULT_CALLS");
  if (calls != NULL && *calls != '\0') {
    const size_t n = strlen(call);
    int listed = 0;
    for (const char* p = strstr(calls, call); p != NULL && !listed; p = strstr(p + 1, call))
      listed = (p == calls || p[-1] == ',') && (p[n] == '\0' || p[n] == ',');
    if (!listed) return 0;
  }
  char full[4096];
  if (path[0] == '/') {
    snprintf(full, sizeof full, "%s", path);
  } else {
    char cwd[2048];
    if (getcwd(cwd, sizeof cwd) == NULL) return 0;
    snprintf(full, sizeof full, "%s/%s", cwd, path);
  }
  return strstr(full, pattern) != NULL;
}

static int fail(void) {
  errno = fault_errno();
  return -1;
}

static int writes(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0; }

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t write(int fd, const void* buf, size_t count) {
  if (fd > 2 && getenv("MESHLM_FAULT_PATH") != NULL) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = readlink(link, path, sizeof path - 1);
    if (n > 0) {
      path[n] = '\0';
      if (faulty("write", path)) return fail();
    }
  }
  return NEXT(write)(fd, buf, count);
}

int rename(const char* from, const char* to) {
  return faulty("rename", from) || faulty("rename", to) ? fail() : NEXT(rename)(from, to);
}
int mkdir(const char* path, mode_t mode) { return faulty("mkdir", path) ? fail() : NEXT(mkdir)(path, mode); }
int mkdirat(int dirfd, const char* path, mode_t mode) {
  return faulty("mkdir", path) ? fail() : NEXT(mkdirat)(dirfd, path, mode);
}
int unlink(const char* path) { return faulty("unlink", path) ? fail() : NEXT(unlink)(path); }
int rmdir(const char* path) { return faulty("rmdir", path) ? fail() : NEXT(rmdir)(path); }
int creat(const char* path, mode_t mode) { return faulty("open", path) ? fail() : NEXT(creat)(path, mode); }

#define OPEN_SHIM(name)                                            \
  int name(const char* path, int flags, ...) {                     \
    va_list ap;                                                    \
    va_start(ap, flags);                                           \
    const mode_t mode = (mode_t)va_arg(ap, int);                   \
    va_end(ap);                                                    \
    if (writes(flags) && faulty("open", path)) return fail();      \
    return NEXT(name)(path, flags, mode);                          \
  }
OPEN_SHIM(open)
OPEN_SHIM(open64)

#define OPENAT_SHIM(name)                                          \
  int name(int dirfd, const char* path, int flags, ...) {          \
    va_list ap;                                                    \
    va_start(ap, flags);                                           \
    const mode_t mode = (mode_t)va_arg(ap, int);                   \
    va_end(ap);                                                    \
    if (writes(flags) && faulty("open", path)) return fail();      \
    return NEXT(name)(dirfd, path, flags, mode);                   \
  }
OPENAT_SHIM(openat)
OPENAT_SHIM(openat64)

#define FOPEN_SHIM(name)                                                      \
  FILE* name(const char* path, const char* mode) {                            \
    if (mode && (mode[0] != 'r' || strchr(mode, '+')) && faulty("open", path)) { \
      errno = fault_errno();                                                  \
      return NULL;                                                            \
    }                                                                         \
    return NEXT(name)(path, mode);                                            \
  }
FOPEN_SHIM(fopen)
FOPEN_SHIM(fopen64)
