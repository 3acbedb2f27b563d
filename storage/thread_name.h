// Names the calling thread, as `top -H`, `ps -L` and perf show it (Linux keeps at most 15 characters).
#ifndef ABODE_STORAGE_THREAD_NAME_H_
#define ABODE_STORAGE_THREAD_NAME_H_

#include <pthread.h>

namespace abode::storage {

inline void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace abode::storage

#endif  // ABODE_STORAGE_THREAD_NAME_H_
