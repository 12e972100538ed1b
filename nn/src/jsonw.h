/* jsonw.h: building cJSON documents with every allocation checked (private
 * to nn). cJSON's Add/Create calls return NULL on out-of-memory and leave a
 * detached item behind when adding fails; these helpers delete such items
 * and clear *ok, so a builder runs straight through and checks ok once,
 * and an out-of-memory never yields a document with parts missing. */
#ifndef NN_JSONW_H
#define NN_JSONW_H

#include <cjson/cJSON.h>

/* Adds item under key (object) or at the end (key NULL: array). */
static inline void jw_item(int *ok, cJSON *parent, const char *key, cJSON *item)
{
    cJSON_bool added = 0;
    if (item && parent)
        added = key ? cJSON_AddItemToObject(parent, key, item)
                    : cJSON_AddItemToArray(parent, item);
    if (!added) {
        cJSON_Delete(item);
        *ok = 0;
    }
}

static inline void jw_num(int *ok, cJSON *parent, const char *key, double v)
{
    jw_item(ok, parent, key, cJSON_CreateNumber(v));
}

static inline void jw_str(int *ok, cJSON *parent, const char *key, const char *s)
{
    jw_item(ok, parent, key, cJSON_CreateString(s));
}

static inline void jw_bool(int *ok, cJSON *parent, const char *key, int b)
{
    jw_item(ok, parent, key, cJSON_CreateBool(b));
}

/* A new array or object under key; NULL (and *ok cleared) on failure. */
static inline cJSON *jw_array(int *ok, cJSON *parent, const char *key)
{
    cJSON *a = cJSON_CreateArray();
    int was = *ok;
    *ok = 1;
    jw_item(ok, parent, key, a);
    cJSON *r = *ok ? a : NULL;
    *ok = *ok && was;
    return r;
}

static inline cJSON *jw_object(int *ok, cJSON *parent, const char *key)
{
    cJSON *a = cJSON_CreateObject();
    int was = *ok;
    *ok = 1;
    jw_item(ok, parent, key, a);
    cJSON *r = *ok ? a : NULL;
    *ok = *ok && was;
    return r;
}

/* Prints doc unformatted if everything went in (NULL otherwise, also on
 * out-of-memory while printing) and deletes it. The result is malloc'd. */
static inline char *jw_finish(int ok, cJSON *doc)
{
    char *s = ok && doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    return s;
}

#endif
