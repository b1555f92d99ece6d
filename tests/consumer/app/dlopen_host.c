/*
 * Loads a shared object built from consumer.c with -DCONSUMER_PLUGIN (and
 * libcpool.a linked into it) and runs its consumer_plugin_main(), as a
 * program loading a plugin that uses cpool would:
 *
 *   dlopen_host ./libconsumer_plugin.so MODE
 *
 * Exit status: the plugin's (0 when its round trips through the pool came
 * back intact), 1 if the object cannot be loaded or lacks the entry point.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <stdio.h>

typedef int (*plugin_main_fn)(int argc, char **argv);

int main(int argc, char **argv) {
  void *handle;
  plugin_main_fn fn;
  int status;

  if (argc < 3) {
    fprintf(stderr, "usage: dlopen_host OBJECT MODE\n");
    return 2;
  }
  handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    fprintf(stderr, "dlopen_host: %s\n", dlerror());
    return 1;
  }
  /* POSIX's way to turn dlsym's void * into a function pointer. */
  *(void **)&fn = dlsym(handle, "consumer_plugin_main");
  if (fn == NULL) {
    fprintf(stderr, "dlopen_host: %s\n", dlerror());
    dlclose(handle);
    return 1;
  }
  status = fn(argc - 1, argv + 1);
  if (dlclose(handle) != 0) {
    fprintf(stderr, "dlopen_host: dlclose: %s\n", dlerror());
    status = 1;
  }
  return status;
}
