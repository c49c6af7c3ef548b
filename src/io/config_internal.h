/* config_internal.h - what the config reader (config.c) and writer
 * (config_yaml.c) share: the names of the enumerated values, indexed by
 * the enum's value, NULL-terminated. src/io/ only. */
#ifndef OCRKD_CONFIG_INTERNAL_H
#define OCRKD_CONFIG_INTERNAL_H

extern const char *const OPT_NAMES[];   /* optim.name */
extern const char *const SCHED_NAMES[]; /* optim.schedule.type */
extern const char *const SCHED_OVER_NAMES[]; /* optim.schedule.over */
extern const char *const CACHE_NAMES[]; /* distill.teacher_cache */
extern const char *const STUDENT_INIT_NAMES[]; /* distill.student_init */
extern const char *const BLOCK_NAMES[]; /* model.extractor.block */

#endif
