/* image_list.h - IMAGE|DIR|@LIST arguments (ocrkd predict, ocrkd-pack
 * --images) expanded into image paths. Names only; decoding is image.h's. */
#ifndef OCRKD_IMAGE_LIST_H
#define OCRKD_IMAGE_LIST_H

/* The arguments as image paths in input order (directories recursive and
 * sorted, @LIST files one path per line); exits with EXIT_DATA naming a
 * missing path, an unreadable list or a directory without images. */
char **image_list_expand(char **args, int nargs, int *n_out);

#endif
