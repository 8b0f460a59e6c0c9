/* dir.h: directories made with their parents, as the store and lmstreamctl
 * need them. */
#ifndef LS_DIR_H
#define LS_DIR_H

/* Creates dir and every missing parent, mode 0770 (less the umask);
 * existing ones are fine. Returns 0, or -1 with errno. */
int dir_make(const char *dir);

#endif
