/* image_list.c - the inputs of `ocrkd predict IMAGE|DIR|@LIST...` and of
 * `ocrkd-pack --images` expanded into one ordered list of image paths: files
 * as given, directories searched recursively for PNG/JPEG names (sorted by
 * path), @LIST files read one path per line. Only names are
 * handled here; not for decoding (image.c). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ocrkd/common.h"
#include "ocrkd/image_list.h"

typedef struct {
    char **v;
    int n, cap;
} PathList;

static void push(PathList *l, const char *path) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, (size_t)l->cap * sizeof(char *));
        if (!l->v) fatal(1, "out of memory listing images");
    }
    l->v[l->n++] = xstrdup(path);
}

static int has_image_suffix(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot &&
           (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int by_path(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every image file under dir (symlinked directories are not followed). */
static void walk(PathList *l, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) fatal(EXIT_DATA, "%s: cannot read directory: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ., .. and hidden files */
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = xmalloc(len);
        snprintf(path, len, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            walk(l, path);
        else if (has_image_suffix(e->d_name) && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            push(l, path);
        free(path);
    }
    closedir(d);
}

/* One argument (a line of a @LIST is one too, but cannot be @ itself). */
static void add_arg(PathList *l, const char *arg, const char *from_list) {
    struct stat st;
    if (stat(arg, &st) != 0) {
        if (from_list) fatal(EXIT_DATA, "%s (listed in %s): %s", arg, from_list, strerror(errno));
        fatal(EXIT_DATA, "%s: %s", arg, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        push(l, arg);
        return;
    }
    char *dir = xstrdup(arg);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = 0;
    int first = l->n;
    walk(l, dir);
    if (l->n == first)
        fatal(EXIT_DATA,
              "%s: no PNG or JPEG images in it (searched recursively for .png, .jpg, "
              ".jpeg)",
              arg);
    qsort(l->v + first, (size_t)(l->n - first), sizeof(char *), by_path);
    free(dir);
}

static void add_list_file(PathList *l, const char *list) {
    FILE *f = fopen(list, "r");
    if (!f) fatal(EXIT_DATA, "@%s: cannot open the list: %s", list, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int first = l->n;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0 || line[0] == '#') continue;
        add_arg(l, line, list);
    }
    int bad = ferror(f);
    free(line);
    fclose(f);
    if (bad) fatal(EXIT_DATA, "@%s: read error", list);
    if (l->n == first) fatal(EXIT_DATA, "@%s: the list names no images", list);
}

char **image_list_expand(char **args, int nargs, int *n_out) {
    PathList l = {0};
    for (int i = 0; i < nargs; i++) {
        if (args[i][0] == '@')
            add_list_file(&l, args[i] + 1);
        else
            add_arg(&l, args[i], NULL);
    }
    *n_out = l.n;
    return l.v;
}
