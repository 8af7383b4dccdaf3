/* arena.h — the one allocator of a compile: bump allocation from chunks,
 * everything freed at once by arena_free.  Out of memory is reported through
 * arena_failed() and a longjmp-free NULL, never by aborting. */
#ifndef ATTNC_ARENA_H
#define ATTNC_ARENA_H
#include <stddef.h>

typedef struct Arena Arena;

/* A new empty arena, or NULL when out of memory. */
Arena *arena_new(void);
/* Free the arena and everything allocated from it. NULL is ignored. */
void arena_free(Arena *a);
/* n zeroed bytes aligned for any type; NULL (and the arena marked failed) when out of memory. */
void *arena_alloc(Arena *a, size_t n);
/* A NUL-terminated copy of n bytes of s. */
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_strdup(Arena *a, const char *s);
/* printf into the arena. */
char *arena_printf(Arena *a, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Whether any allocation from this arena has failed. */
int arena_failed(const Arena *a);

/* A growable array of pointers living in an arena. */
typedef struct PtrVec {
    void **items;
    int len, cap;
} PtrVec;
/* Append p; returns 0 when out of memory. */
int ptrvec_push(Arena *a, PtrVec *v, void *p);

#endif
