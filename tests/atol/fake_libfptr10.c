/* A fake libfptr10 for the tests: the same C entry points our ctypes transport uses, no register.
 *
 * processJson answers with the text of the environment variable FAKE_FPTR_ANSWER_<type> (ASCII JSON),
 * or fails with FAKE_FPTR_ERROR_<type> = "<code>"; once a task failed, FAKE_FPTR_ANSWER_<type>_AFTER_ERROR
 * (when set) answers instead — a register whose state moved on. Every call is appended to the file named by
 * FAKE_FPTR_LOG ("json <task>", "setting <key>=<value>", "open", "close", "destroy").
 * Written for kkt-worker's tests from the documented signatures; not ATOL code.
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define PARAM_JSON_DATA 65645
#define BUF 65536

static wchar_t json_in[BUF];
static wchar_t json_out[BUF];
static int last_error = 0;
static int failed = 0;

static void note(const char *what, const wchar_t *a, const wchar_t *b) {
    const char *path = getenv("FAKE_FPTR_LOG");
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s", what);
    if (a) fprintf(f, " %ls", a);
    if (b) fprintf(f, "=%ls", b);
    fprintf(f, "\n");
    fclose(f);
}

int libfptr_create(void **handle) { setlocale(LC_ALL, "C.UTF-8"); failed = 0; *handle = malloc(8); note("create", 0, 0); return 0; }
void libfptr_destroy(void **handle) { free(*handle); *handle = 0; note("destroy", 0, 0); }
int libfptr_set_single_setting(void *h, const wchar_t *key, const wchar_t *value) { note("setting", key, value); return 0; }
int libfptr_apply_single_settings(void *h) { return 0; }
int libfptr_open(void *h) { note("open", 0, 0); return 0; }
int libfptr_close(void *h) { note("close", 0, 0); return 0; }

void libfptr_set_param_str(void *h, int id, const wchar_t *value) {
    if (id == PARAM_JSON_DATA) { wcsncpy(json_in, value, BUF - 1); json_in[BUF - 1] = 0; }
}

int libfptr_process_json(void *h) {
    char name[128] = "FAKE_FPTR_ANSWER_";
    char type[64] = {0};
    const wchar_t *p = wcsstr(json_in, L"\"type\":\"");
    note("json", json_in, 0);
    if (p) {
        size_t i = 0;
        p += 8;
        while (*p && *p != L'"' && i < sizeof(type) - 1) type[i++] = (char)*p++;
    }
    char errname[128] = "FAKE_FPTR_ERROR_";
    strncat(errname, type, sizeof(errname) - strlen(errname) - 1);
    const char *err = getenv(errname);
    if (err) { last_error = atoi(err); failed = 1; return -1; }
    strncat(name, type, sizeof(name) - strlen(name) - 1);
    const char *answer = getenv(name);
    if (failed) {
        char later[160];
        snprintf(later, sizeof(later), "%s_AFTER_ERROR", name);
        if (getenv(later)) answer = getenv(later);
    }
    mbstowcs(json_out, answer ? answer : "{}", BUF - 1);
    last_error = 0;
    return 0;
}

static int copy_out(const wchar_t *src, wchar_t *buf, int size) {
    int need = (int)wcslen(src) + 1;
    if (need <= size) wcscpy(buf, src);
    return need;
}

int libfptr_get_param_str(void *h, int id, wchar_t *buf, int size) {
    return copy_out(id == PARAM_JSON_DATA ? json_out : L"", buf, size);
}
int libfptr_error_code(void *h) { return last_error; }
int libfptr_error_description(void *h, wchar_t *buf, int size) { return copy_out(L"fake error", buf, size); }
