/* procsnap's hot loops over /proc in C.
 *
 * A process's and a thread's own files (stat, status, io, cgroup) are parsed here and nowhere else:
 * process() and thread_rows() read and parse a process or its threads in one call, and
 * parse_stat, parse_status, status_ctxsw, parse_io and parse_cgroup parse the bytes of one file
 * (recorder/collect/processes.py and threads.py use them where a process is read file by file).
 * The descriptor loops make the same system calls, in the same order, with the same outcome per
 * error, as their Python twins in recorder/collect/descriptors.py (the numbered-fd loop, the maps rows, the inet tables), and
 * tests/test_native.py holds the two to the same answers on the live host and on fake /proc trees.
 * The C loops write their rows into a Files (Arrow column buffers, below), not Python tuples.
 * The module is optional: when it cannot be built or imported (or PROCSNAP_NATIVE=0), psutil reads
 * processes and threads and the descriptor loops run in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <stddef.h>
#include <sys/socket.h>

#define PBUF 4352
#define TBUF 8192

static PyObject *K_PIPE; /* fd_rows' key of the pipefs stat in its shared dict */

static const char *SHARED_ANON[] = {
    "anon_inode:[eventpoll]", "anon_inode:[eventfd]", "anon_inode:[timerfd]",
    "anon_inode:inotify", "anon_inode:[signalfd]", "anon_inode:[fanotify]", NULL,
};

static int is_shared_anon(const char *t, Py_ssize_t n) {
    for (const char **s = SHARED_ANON; *s; s++)
        if ((Py_ssize_t)strlen(*s) == n && memcmp(*s, t, n) == 0)
            return 1;
    return 0;
}

/* (text, raw): text of a name, and its bytes when they are not UTF-8 (procfs.split_text). */
static int name_of(const char *b, Py_ssize_t n, PyObject **text, PyObject **raw) {
    *raw = NULL;
    *text = PyUnicode_DecodeUTF8(b, n, NULL);
    if (*text) return 0;
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return -1;
    PyErr_Clear();
    *text = PyUnicode_DecodeUTF8(b, n, "backslashreplace");
    if (!*text) return -1;
    *raw = PyBytes_FromStringAndSize(b, n);
    if (!*raw) {
        Py_CLEAR(*text);
        return -1;
    }
    return 0;
}

static int startswith(const char *b, Py_ssize_t n, const char *p) {
    Py_ssize_t k = (Py_ssize_t)strlen(p);
    return n >= k && memcmp(b, p, k) == 0;
}

/* An integer between prefix and the final ']' (pipe:[N], socket:[N]); -1 when malformed. */
static int bracket_ino(const char *b, Py_ssize_t n, Py_ssize_t skip, unsigned long long *out) {
    if (n <= skip + 1 || b[n - 1] != ']') return -1;
    unsigned long long v = 0;
    for (Py_ssize_t i = skip; i < n - 1; i++) {
        if (b[i] < '0' || b[i] > '9') return -1;
        if (v > (~0ULL - 9) / 10) return -1;
        v = v * 10 + (b[i] - '0');
    }
    *out = v;
    return 0;
}


/* ------------------------------------------------------------------------------------------ */
/* open_files columns: a Files object holds a snapshot's descriptor rows as Arrow's buffers
 * (values, one validity byte per row, string offsets and bytes), filled by fd_rows and maps_rows
 * with no Python object per row; rows made in Python come in through Files.add. Files.buffers
 * hands the columns over (descriptors.FileRows makes them Arrow arrays with from_buffers), and
 * Files.rows gives tuples in descriptors.FIELDS order for the live commands, which never import
 * pyarrow. Each row's mount_point is found here too, once per distinct device. */

enum { F_PID, F_START, F_FD, F_FDNUM, F_MODE, F_TYPE, F_DEVICE, F_SIZE, F_POS, F_INODE, F_PROTO, F_NAME,
       F_RAW, F_DELETED, F_MOUNT, N_FCOLS };
/* i: int32, q: int64, s: string (offsets + bytes), b: bool; F_START holds the index of the
 * process's start time in Files.starts */
static const char FKIND[N_FCOLS] = {'i', 'i', 's', 'i', 's', 's', 's', 'q', 'q', 'q', 's', 's', 's', 'b', 's'};

typedef struct {
    char *p;
    size_t len, cap;
} gbuf;

static int gbuf_reserve(gbuf *b, size_t n) {
    if (b->len + n <= b->cap) return 0;
    size_t c = b->cap ? b->cap * 2 : 64;
    while (c < b->len + n) c *= 2;
    char *q = PyMem_Realloc(b->p, c);
    if (!q) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = q;
    b->cap = c;
    return 0;
}

static int gbuf_put(gbuf *b, const void *src, size_t n) {
    if (gbuf_reserve(b, n) < 0) return -1;
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static void gbuf_free(gbuf *b) {
    PyMem_Free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

typedef struct {
    gbuf val, valid, data; /* val: int32 / int64 values, or int32 string offsets (a leading 0) */
} fcol;

typedef struct { /* a string, or NULL (s == NULL) */
    const char *s;
    Py_ssize_t n;
} sv;

static const sv SNULL = {NULL, 0};
static sv svs(const char *s) { return (sv){s, (Py_ssize_t)strlen(s)}; }

typedef struct {
    char dev[48];
    Py_ssize_t dn;
    char *mount; /* NULL: none */
    Py_ssize_t mn;
} mount_entry;

#define MOUNT_CACHE 64

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    fcol c[N_FCOLS];
    PyObject *starts; /* the start_time object of each process, as rows() gives it */
    gbuf start_us;    /* ... and its µs since the epoch (int64), 0 for None */
    gbuf start_ok;    /* ... and whether it is not None (a byte each) */
    PyObject *by_dev, *of_path; /* Mounts.by_dev and Mounts.of_path, or NULL: no mount_point */
    PyObject *names;  /* rows(): each name's one str (a library's name in every process), or NULL */
    long long pid;    /* the process rows are added for (begin()) */
    Py_ssize_t start, mark; /* its start's index in starts; the row its rows begin at */
    mount_entry *mounts; /* MOUNT_CACHE of them, with by_dev */
    int n_mounts;
} FilesObject;

static PyTypeObject FilesType;

static int fcol_init(fcol *c, char kind) {
    if (kind == 's') {
        int32_t z = 0;
        return gbuf_put(&c->val, &z, 4);
    }
    return 0;
}

static int col_int(FilesObject *f, int i, long long v, int ok) {
    fcol *c = &f->c[i];
    char one = ok ? 1 : 0;
    if (!ok) v = 0;
    if (FKIND[i] == 'q') {
        int64_t x = v;
        if (gbuf_put(&c->val, &x, 8) < 0) return -1;
    } else if (FKIND[i] == 'b') {
        char x = v ? 1 : 0;
        if (gbuf_put(&c->val, &x, 1) < 0) return -1;
    } else {
        int32_t x = (int32_t)v;
        if (gbuf_put(&c->val, &x, 4) < 0) return -1;
    }
    return gbuf_put(&c->valid, &one, 1);
}

static int col_str(FilesObject *f, int i, sv s) {
    fcol *c = &f->c[i];
    char one = s.s ? 1 : 0;
    if (s.s && gbuf_put(&c->data, s.s, s.n) < 0) return -1;
    if (c->data.len > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "open_files: over 2 GiB of text in a column");
        return -1;
    }
    int32_t end = (int32_t)c->data.len;
    if (gbuf_put(&c->val, &end, 4) < 0) return -1;
    return gbuf_put(&c->valid, &one, 1);
}

/* The string of row r of string column i. */
static sv col_get(FilesObject *f, int i, Py_ssize_t r) {
    fcol *c = &f->c[i];
    if (!c->valid.p[r]) return SNULL;
    int32_t *o = (int32_t *)c->val.p;
    return (sv){c->data.p + o[r], o[r + 1] - o[r]};
}

static long long col_getint(FilesObject *f, int i, Py_ssize_t r, int *ok) {
    fcol *c = &f->c[i];
    *ok = c->valid.p[r];
    if (FKIND[i] == 'q') return ((int64_t *)c->val.p)[r];
    if (FKIND[i] == 'b') return c->val.p[r];
    return ((int32_t *)c->val.p)[r];
}

static void files_truncate(FilesObject *f, Py_ssize_t n) {
    for (int i = 0; i < N_FCOLS; i++) {
        fcol *c = &f->c[i];
        c->valid.len = n;
        if (FKIND[i] == 's') {
            c->val.len = (n + 1) * 4;
            c->data.len = ((int32_t *)c->val.p)[n];
        } else {
            c->val.len = n * (FKIND[i] == 'q' ? 8 : FKIND[i] == 'b' ? 1 : 4);
        }
    }
    f->n = n;
}

/* The mount point of a device's file system ("major,minor"), looked up in Mounts.by_dev once
 * per device. 0, or -1 with an exception. */
static int mount_of_dev(FilesObject *f, sv dev, sv *out) {
    *out = SNULL;
    if (!dev.s || !f->by_dev) return 0;
    for (int k = 0; k < f->n_mounts; k++) {
        mount_entry *e = &f->mounts[k];
        if (e->dn == dev.n && memcmp(e->dev, dev.s, dev.n) == 0) {
            *out = (sv){e->mount, e->mn};
            return 0;
        }
    }
    PyObject *key = PyUnicode_DecodeUTF8(dev.s, dev.n, "surrogateescape");
    if (!key) return -1;
    PyObject *m = PyDict_GetItemWithError(f->by_dev, key); /* borrowed */
    Py_DECREF(key);
    if (!m && PyErr_Occurred()) return -1;
    Py_ssize_t mn = 0;
    const char *ms = m && m != Py_None ? PyUnicode_AsUTF8AndSize(m, &mn) : NULL;
    if (m && m != Py_None && !ms) return -1;
    if (f->n_mounts == MOUNT_CACHE || dev.n > (Py_ssize_t)sizeof f->mounts[0].dev) {
        /* more devices than the cache holds: the dict's string lives as long as the table */
        *out = ms ? (sv){ms, mn} : SNULL;
        return 0;
    }
    mount_entry *e = &f->mounts[f->n_mounts];
    e->mount = NULL;
    if (ms) {
        if (!(e->mount = PyMem_Malloc(mn + 1))) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(e->mount, ms, mn);
    }
    memcpy(e->dev, dev.s, dev.n);
    e->dn = dev.n;
    e->mn = mn;
    f->n_mounts++;
    *out = ms ? (sv){e->mount, mn} : SNULL;
    return 0;
}

/* Mounts.column for one row: by device, by the path for a CHR or BLK. */
static int put_mount(FilesObject *f, sv type, sv dev, sv name) {
    if (!f->by_dev) return col_str(f, F_MOUNT, SNULL);
    if (type.n == 3 && (memcmp(type.s, "CHR", 3) == 0 || memcmp(type.s, "BLK", 3) == 0)) {
        PyObject *p = PyUnicode_DecodeUTF8(name.s, name.n, "surrogateescape");
        PyObject *m = p ? PyObject_CallOneArg(f->of_path, p) : NULL;
        Py_XDECREF(p);
        if (!m) return -1;
        Py_ssize_t mn = 0;
        const char *ms = m != Py_None ? PyUnicode_AsUTF8AndSize(m, &mn) : NULL;
        int r = (m != Py_None && !ms) ? -1 : col_str(f, F_MOUNT, ms ? (sv){ms, mn} : SNULL);
        Py_DECREF(m);
        return r;
    }
    sv m;
    if (mount_of_dev(f, dev, &m) < 0) return -1;
    return col_str(f, F_MOUNT, m);
}

typedef struct { /* one row's values but pid and start_time (the process's, from begin()) */
    sv fd, mode, type, device, proto, name, raw;
    long long fdnum, size, pos, inode;
    int has_fdnum, has_size, has_pos, has_inode, deleted;
} frow;

static int files_row(FilesObject *f, const frow *r) {
    if (col_int(f, F_PID, f->pid, 1) < 0 || col_int(f, F_START, f->start, 1) < 0 || col_str(f, F_FD, r->fd) < 0 ||
        col_int(f, F_FDNUM, r->fdnum, r->has_fdnum) < 0 || col_str(f, F_MODE, r->mode) < 0 ||
        col_str(f, F_TYPE, r->type) < 0 || col_str(f, F_DEVICE, r->device) < 0 ||
        col_int(f, F_SIZE, r->size, r->has_size) < 0 || col_int(f, F_POS, r->pos, r->has_pos) < 0 ||
        col_int(f, F_INODE, r->inode, r->has_inode) < 0 || col_str(f, F_PROTO, r->proto) < 0 ||
        col_str(f, F_NAME, r->name) < 0 || col_str(f, F_RAW, r->raw) < 0 ||
        col_int(f, F_DELETED, r->deleted, 1) < 0 || put_mount(f, r->type, r->device, r->name) < 0) {
        files_truncate(f, f->n);
        return -1;
    }
    f->n++;
    return 0;
}

/* A name's text (UTF-8, or backslashreplace'd where it is not: procfs.split_text) and its raw
 * bytes where it is not UTF-8; *keep holds the objects they point into (NULL when none). */
static int name_sv(const char *b, Py_ssize_t n, sv *text, sv *raw, PyObject **keep) {
    *keep = NULL;
    *raw = SNULL;
    Py_ssize_t i = 0;
    while (i < n && !(b[i] & 0x80)) i++;
    if (i == n) { /* ASCII: the text is the bytes */
        *text = (sv){b, n};
        return 0;
    }
    PyObject *t, *rw;
    if (name_of(b, n, &t, &rw) < 0) return -1;
    Py_ssize_t tn;
    const char *ts = PyUnicode_AsUTF8AndSize(t, &tn);
    if (!ts) {
        Py_DECREF(t);
        Py_XDECREF(rw);
        return -1;
    }
    *text = (sv){ts, tn};
    if (rw) *raw = (sv){b, n};
    Py_XDECREF(rw);
    *keep = t;
    return 0;
}

static int dev_sv(char *buf, size_t size, unsigned long long dev, sv *out) {
    int k = snprintf(buf, size, "%u,%u", major((dev_t)dev), minor((dev_t)dev));
    *out = (sv){buf, k};
    return 0;
}

/* FileRows.add_path with a stat: a path's, anonymous inode's or pipe's row. */
static int path_row(FilesObject *f, sv fd, long long fdnum, int has_fdnum, sv mode, long long pos, int has_pos,
                    const char *t, Py_ssize_t n, const struct stat *st) {
    char dbuf[48];
    frow r = {.fd = fd, .mode = mode, .proto = SNULL, .raw = SNULL, .fdnum = fdnum, .has_fdnum = has_fdnum,
              .inode = (long long)st->st_ino, .has_inode = 1};
    PyObject *keep = NULL;
    int res;
    if (startswith(t, n, "anon_inode:")) {
        r.type = svs("a_inode");
        dev_sv(dbuf, sizeof dbuf, st->st_dev, &r.device);
        r.size = (long long)st->st_size;
        r.has_size = 1;
        if (name_sv(t + 11, n - 11, &r.name, &r.raw, &keep) < 0) return -1;
        res = files_row(f, &r);
        Py_XDECREF(keep);
        return res;
    }
    if (startswith(t, n, "pipe:[")) {
        r.type = svs("FIFO");
        dev_sv(dbuf, sizeof dbuf, st->st_dev, &r.device);
        r.has_pos = 1;
        r.name = svs("pipe");
        return files_row(f, &r);
    }
    mode_t m = st->st_mode;
    const char *typ = S_ISREG(m) ? "REG" : S_ISDIR(m) ? "DIR" : S_ISCHR(m) ? "CHR" : S_ISBLK(m) ? "BLK"
                    : S_ISFIFO(m) ? "FIFO" : S_ISLNK(m) ? "LINK" : S_ISSOCK(m) ? "SOCK" : "unknown";
    r.type = svs(typ);
    r.deleted = n >= 10 && t[0] == '/' && memcmp(t + n - 10, " (deleted)", 10) == 0;
    if (S_ISCHR(m) || S_ISBLK(m)) {
        dev_sv(dbuf, sizeof dbuf, st->st_rdev, &r.device);
    } else {
        dev_sv(dbuf, sizeof dbuf, st->st_dev, &r.device);
        if (S_ISREG(m) || S_ISDIR(m)) {
            r.size = (long long)st->st_size;
            r.has_size = 1;
        }
    }
    r.pos = pos;
    r.has_pos = has_pos;
    if (S_ISFIFO(m) && !has_pos) {
        r.pos = 0;
        r.has_pos = 1;
    }
    if (name_sv(t, n, &r.name, &r.raw, &keep) < 0) return -1;
    res = files_row(f, &r);
    Py_XDECREF(keep);
    return res;
}

static PyObject *Files_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"by_dev", "of_path", NULL};
    PyObject *by_dev = Py_None, *of_path = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO", kwlist, &by_dev, &of_path)) return NULL;
    if (by_dev != Py_None && (!PyDict_Check(by_dev) || !PyCallable_Check(of_path))) {
        PyErr_SetString(PyExc_TypeError, "Files(by_dev: dict, of_path: callable)");
        return NULL;
    }
    FilesObject *f = (FilesObject *)type->tp_alloc(type, 0);
    if (!f) return NULL;
    f->pid = -1;
    f->start = -1;
    if (!(f->starts = PyList_New(0))) goto fail;
    for (int i = 0; i < N_FCOLS; i++)
        if (fcol_init(&f->c[i], FKIND[i]) < 0) goto fail;
    if (by_dev != Py_None) {
        if (!(f->mounts = PyMem_Calloc(MOUNT_CACHE, sizeof(mount_entry)))) {
            PyErr_NoMemory();
            goto fail;
        }
        Py_INCREF(by_dev);
        Py_INCREF(of_path);
        f->by_dev = by_dev;
        f->of_path = of_path;
    }
    return (PyObject *)f;
fail:
    Py_DECREF(f);
    return NULL;
}

static void files_free_buffers(FilesObject *f) {
    for (int i = 0; i < N_FCOLS; i++) {
        gbuf_free(&f->c[i].val);
        gbuf_free(&f->c[i].valid);
        gbuf_free(&f->c[i].data);
    }
    gbuf_free(&f->start_us);
    gbuf_free(&f->start_ok);
    for (int k = 0; k < f->n_mounts; k++) PyMem_Free(f->mounts[k].mount);
    f->n_mounts = 0;
}

static void Files_dealloc(FilesObject *f) {
    files_free_buffers(f);
    PyMem_Free(f->mounts);
    Py_XDECREF(f->starts);
    Py_XDECREF(f->names);
    Py_XDECREF(f->by_dev);
    Py_XDECREF(f->of_path);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static Py_ssize_t Files_len(FilesObject *f) { return f->n; }

/* begin(pid, start_time, start_us): the rows added next are this process's (start_us: the start
 * time in µs since the epoch, None with it). */
static PyObject *Files_begin(FilesObject *f, PyObject *args) {
    long long pid;
    PyObject *start, *us;
    if (!PyArg_ParseTuple(args, "LOO", &pid, &start, &us)) return NULL;
    Py_ssize_t k = PyList_GET_SIZE(f->starts);
    if (pid == f->pid && k && PyList_GET_ITEM(f->starts, k - 1) == start) Py_RETURN_NONE;
    long long v = 0;
    char ok = us != Py_None;
    if (ok && (v = PyLong_AsLongLong(us)) == -1 && PyErr_Occurred()) return NULL;
    if (PyList_Append(f->starts, start) < 0 || gbuf_put(&f->start_us, &v, 8) < 0 ||
        gbuf_put(&f->start_ok, &ok, 1) < 0)
        return NULL;
    f->pid = pid;
    f->start = k;
    f->mark = f->n;
    Py_RETURN_NONE;
}

/* drop(pid): forget the rows of the process being read (it vanished): they are the last ones. */
static PyObject *Files_drop(FilesObject *f, PyObject *arg) {
    long long pid = PyLong_AsLongLong(arg);
    if (pid == -1 && PyErr_Occurred()) return NULL;
    if (pid == f->pid) files_truncate(f, f->mark);
    Py_RETURN_NONE;
}

static int sv_of(PyObject *o, sv *out) { /* str, bytes or None */
    if (o == Py_None) {
        *out = SNULL;
        return 0;
    }
    if (PyBytes_Check(o)) {
        *out = (sv){PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o)};
        return 0;
    }
    out->s = PyUnicode_AsUTF8AndSize(o, &out->n);
    if (!out->s && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        /* a surrogate-escaped name (Mounts and the fallback never make one; be safe) */
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "Files.add: a string that is not UTF-8");
    }
    return out->s ? 0 : -1;
}

static int int_of(PyObject *o, long long *v, int *ok) {
    *ok = o != Py_None;
    *v = 0;
    if (!*ok) return 0;
    *v = PyLong_AsLongLong(o);
    return (*v == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* add(row): a row in FIELDS order made in Python (its pid and start_time are begin()'s). */
static PyObject *Files_add(FilesObject *f, PyObject *row) {
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 14) {
        PyErr_SetString(PyExc_TypeError, "Files.add: a 14-tuple in FIELDS order");
        return NULL;
    }
    frow r;
    PyObject **v = &PyTuple_GET_ITEM(row, 0);
    if (sv_of(v[2], &r.fd) < 0 || int_of(v[3], &r.fdnum, &r.has_fdnum) < 0 || sv_of(v[4], &r.mode) < 0 ||
        sv_of(v[5], &r.type) < 0 || sv_of(v[6], &r.device) < 0 || int_of(v[7], &r.size, &r.has_size) < 0 ||
        int_of(v[8], &r.pos, &r.has_pos) < 0 || int_of(v[9], &r.inode, &r.has_inode) < 0 ||
        sv_of(v[10], &r.proto) < 0 || sv_of(v[11], &r.name) < 0 || sv_of(v[12], &r.raw) < 0)
        return NULL;
    r.deleted = PyObject_IsTrue(v[13]);
    if (r.deleted < 0 || files_row(f, &r) < 0) return NULL;
    Py_RETURN_NONE;
}

/* Row i of o added to f as f's current process's; its mount_point found again in f's table. */
static int files_copy_row(FilesObject *f, FilesObject *o, Py_ssize_t i) {
    frow r;
    int ok;
    r.fd = col_get(o, F_FD, i);
    r.mode = col_get(o, F_MODE, i);
    r.type = col_get(o, F_TYPE, i);
    r.device = col_get(o, F_DEVICE, i);
    r.proto = col_get(o, F_PROTO, i);
    r.name = col_get(o, F_NAME, i);
    r.raw = col_get(o, F_RAW, i);
    r.fdnum = col_getint(o, F_FDNUM, i, &r.has_fdnum);
    r.size = col_getint(o, F_SIZE, i, &r.has_size);
    r.pos = col_getint(o, F_POS, i, &r.has_pos);
    r.inode = col_getint(o, F_INODE, i, &r.has_inode);
    r.deleted = (int)col_getint(o, F_DELETED, i, &ok);
    return files_row(f, &r);
}

/* extend(table, ids): rows of another Files (table) by their indexes (ids: int32 values in native
 * byte order), as the current process's rows: the mem rows a MapsCache keeps, each distinct
 * mapped file's row once in its table, a process's rows as the indexes of its files. */
static PyObject *Files_extend(FilesObject *f, PyObject *args) {
    FilesObject *o;
    const char *ids;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "O!y#", &FilesType, &o, &ids, &n)) return NULL;
    for (Py_ssize_t k = 0; k + 4 <= n; k += 4) {
        int32_t i;
        memcpy(&i, ids + k, 4);
        if (i < 0 || i >= o->n) {
            PyErr_SetString(PyExc_IndexError, "Files.extend: no such row");
            return NULL;
        }
        if (files_copy_row(f, o, i) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

/* A bitmap of the validity bytes (None when every row is valid; Arrow's LSB order). */
static PyObject *bitmap(const char *bytes, Py_ssize_t n, int none_if_full) {
    Py_ssize_t k = 0;
    if (none_if_full) {
        while (k < n && bytes[k]) k++;
        if (k == n) Py_RETURN_NONE;
    }
    PyObject *b = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    if (!b) return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(b);
    memset(p, 0, (n + 7) / 8);
    for (Py_ssize_t i = 0; i < n; i++)
        if (bytes[i]) p[i >> 3] |= (unsigned char)(1u << (i & 7));
    return b;
}

/* A column's memory, taken from its gbuf, read through the buffer protocol (FileRows copies it
 * into Arrow's memory pool): the column is never copied into a bytes object first. */
typedef struct {
    PyObject_HEAD
    char *p;
    Py_ssize_t n;
} BufObject;

static int Buf_getbuffer(BufObject *b, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)b, b->p, b->n, 1, flags);
}

static void Buf_dealloc(BufObject *b) {
    PyMem_Free(b->p);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyBufferProcs Buf_as_buffer = {.bf_getbuffer = (getbufferproc)Buf_getbuffer};

static PyTypeObject BufType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "recorder.source._native.Buf",
    .tp_basicsize = sizeof(BufObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A column buffer of a Files, read-only, for pyarrow.py_buffer.",
    .tp_dealloc = (destructor)Buf_dealloc,
    .tp_as_buffer = &Buf_as_buffer,
};

/* A Buf of the memory p (n bytes, allocated with PyMem_Malloc), which it takes: trimmed to n. */
static PyObject *buf_take(char *p, Py_ssize_t n) {
    char *q = PyMem_Realloc(p, n ? n : 1);
    if (q) p = q;
    BufObject *b = PyObject_New(BufObject, &BufType);
    if (!b) {
        PyMem_Free(p);
        return NULL;
    }
    b->p = p;
    b->n = n;
    return (PyObject *)b;
}

static PyObject *buf_of(gbuf *g) { /* the gbuf's memory, taken: the gbuf is empty afterwards */
    char *p = g->p ? g->p : PyMem_Malloc(1);
    Py_ssize_t n = (Py_ssize_t)g->len;
    g->p = NULL;
    g->len = g->cap = 0;
    if (!p) return PyErr_NoMemory();
    return buf_take(p, n);
}

/* buffers() -> [(validity bitmap or None, values, string bytes or None)] per column in FIELDS
 * order and then mount_point: the columns' own memory (Buf objects, no copy), given up as each
 * column is handed over, so the Files is empty afterwards. start_time's values are µs since the
 * epoch. */
static PyObject *Files_buffers(FilesObject *f, PyObject *unused) {
    Py_ssize_t n = f->n;
    PyObject *out = PyList_New(N_FCOLS);
    if (!out) return NULL;
    for (int i = 0; i < N_FCOLS; i++) {
        fcol *c = &f->c[i];
        PyObject *valid, *vals, *data = Py_None;
        if (i == F_START) { /* the process's start time, by its index */
            int64_t *us = (int64_t *)f->start_us.p;
            int64_t *dst = PyMem_Malloc(n ? n * 8 : 1);
            char *okb = PyMem_Malloc(n ? n : 1);
            if (!dst || !okb) {
                PyMem_Free(dst);
                PyMem_Free(okb);
                Py_DECREF(out);
                return PyErr_NoMemory();
            }
            int32_t *ix = (int32_t *)c->val.p;
            for (Py_ssize_t r = 0; r < n; r++) {
                dst[r] = us[ix[r]];
                okb[r] = f->start_ok.p[ix[r]];
            }
            vals = buf_take((char *)dst, n * 8);
            valid = bitmap(okb, n, 1);
            PyMem_Free(okb);
            Py_INCREF(data);
        } else {
            valid = bitmap(c->valid.p, n, 1);
            vals = FKIND[i] == 'b' ? bitmap(c->val.p, n, 0) : buf_of(&c->val);
            if (FKIND[i] == 's') data = buf_of(&c->data);
            else Py_INCREF(data);
        }
        gbuf_free(&c->val);
        gbuf_free(&c->valid);
        gbuf_free(&c->data);
        if (!valid || !vals || !data) {
            Py_XDECREF(valid);
            Py_XDECREF(vals);
            Py_XDECREF(data);
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, Py_BuildValue("(NNN)", valid, vals, data));
        if (!PyList_GET_ITEM(out, i)) {
            Py_DECREF(out);
            return NULL;
        }
    }
    files_free_buffers(f);
    for (int i = 0; i < N_FCOLS; i++)
        if (fcol_init(&f->c[i], FKIND[i]) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    f->n = 0;
    f->pid = -1;
    f->mark = 0;
    Py_SETREF(f->starts, PyList_New(0));
    if (!f->starts) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* Short strings (type, mode, fd, device) repeat: one object each per rows() call. */
#define SCACHE 1021
static PyObject *cached_str(PyObject **cache, sv s) {
    if (!s.s) Py_RETURN_NONE;
    if (s.n > 12) return PyUnicode_DecodeUTF8(s.s, s.n, NULL);
    unsigned h = 5381;
    for (Py_ssize_t i = 0; i < s.n; i++) h = h * 33 + (unsigned char)s.s[i];
    PyObject **slot = &cache[h % SCACHE];
    if (*slot) {
        Py_ssize_t n;
        const char *t = PyUnicode_AsUTF8AndSize(*slot, &n);
        if (t && n == s.n && memcmp(t, s.s, n) == 0) return Py_NewRef(*slot);
    }
    PyObject *o = PyUnicode_DecodeUTF8(s.s, s.n, NULL);
    if (o) Py_XSETREF(*slot, Py_NewRef(o));
    return o;
}

static PyObject *int_or_none(FilesObject *f, int i, Py_ssize_t r) {
    int ok;
    long long v = col_getint(f, i, r, &ok);
    return ok ? PyLong_FromLongLong(v) : Py_NewRef(Py_None);
}

/* rows(clear=False) -> [tuple]: the rows in FIELDS order, as the Python loops make them; with
 * clear, the Files is emptied (its buffers kept for the next rows). */
static PyObject *Files_rows(FilesObject *f, PyObject *args) {
    int clear = 0;
    if (!PyArg_ParseTuple(args, "|p", &clear)) return NULL;
    PyObject *out = PyList_New(f->n);
    PyObject **cache = PyMem_Calloc(SCACHE, sizeof(PyObject *));
    if (!f->names && !(f->names = PyDict_New())) {
        Py_XDECREF(out);
        PyMem_Free(cache);
        return NULL;
    }
    if (!out || !cache) {
        Py_XDECREF(out);
        PyMem_Free(cache);
        return PyErr_NoMemory();
    }
    int failed = 0;
    for (Py_ssize_t r = 0; r < f->n && !failed; r++) {
        int ok;
        PyObject *v[14];
        v[0] = PyLong_FromLongLong(col_getint(f, F_PID, r, &ok));
        v[1] = Py_NewRef(PyList_GET_ITEM(f->starts, col_getint(f, F_START, r, &ok)));
        v[2] = cached_str(cache, col_get(f, F_FD, r));
        v[3] = int_or_none(f, F_FDNUM, r);
        v[4] = cached_str(cache, col_get(f, F_MODE, r));
        v[5] = cached_str(cache, col_get(f, F_TYPE, r));
        v[6] = cached_str(cache, col_get(f, F_DEVICE, r));
        v[7] = int_or_none(f, F_SIZE, r);
        v[8] = int_or_none(f, F_POS, r);
        v[9] = int_or_none(f, F_INODE, r);
        v[10] = cached_str(cache, col_get(f, F_PROTO, r));
        sv nm = col_get(f, F_NAME, r), raw = col_get(f, F_RAW, r);
        v[11] = PyUnicode_DecodeUTF8(nm.s, nm.n, NULL);
        if (v[11]) {
            PyObject *one = PyDict_SetDefault(f->names, v[11], v[11]); /* borrowed */
            Py_XINCREF(one);
            Py_SETREF(v[11], one);
        }
        v[12] = raw.s ? PyBytes_FromStringAndSize(raw.s, raw.n) : Py_NewRef(Py_None);
        v[13] = PyBool_FromLong((long)col_getint(f, F_DELETED, r, &ok));
        PyObject *t = PyTuple_New(14);
        for (int i = 0; i < 14; i++) {
            if (!v[i]) failed = 1;
            if (t) PyTuple_SET_ITEM(t, i, v[i] ? v[i] : Py_NewRef(Py_None));
            else Py_XDECREF(v[i]);
        }
        if (!t) failed = 1;
        if (failed) Py_XDECREF(t);
        else PyList_SET_ITEM(out, r, t);
    }
    for (int k = 0; k < SCACHE; k++) Py_XDECREF(cache[k]);
    PyMem_Free(cache);
    if (failed) {
        Py_DECREF(out);
        return NULL;
    }
    if (clear) {
        files_truncate(f, 0);
        f->pid = -1;
        f->mark = 0;
        f->start_us.len = f->start_ok.len = 0;
        Py_SETREF(f->starts, PyList_New(0));
        if (!f->starts) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyMethodDef Files_methods[] = {
    {"begin", (PyCFunction)Files_begin, METH_VARARGS, "begin(pid, start_time, start_us): the next rows' process."},
    {"add", (PyCFunction)Files_add, METH_O, "add(row): one row in descriptors.FIELDS order."},
    {"extend", (PyCFunction)Files_extend, METH_VARARGS, "extend(table, ids): rows of table by index, as the current process's."},
    {"drop", (PyCFunction)Files_drop, METH_O, "drop(pid): forget the current process's rows if it is pid."},
    {"buffers", (PyCFunction)Files_buffers, METH_NOARGS, "The columns' Arrow buffers; empties the Files."},
    {"rows", (PyCFunction)Files_rows, METH_VARARGS, "rows(clear=False): the rows as tuples in descriptors.FIELDS order."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Files_seq = {.sq_length = (lenfunc)Files_len};

static PyTypeObject FilesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "recorder.source._native.Files",
    .tp_basicsize = sizeof(FilesObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A snapshot's open_files rows as Arrow column buffers (Files(by_dev, of_path): with mount_point).",
    .tp_new = Files_new,
    .tp_dealloc = (destructor)Files_dealloc,
    .tp_methods = Files_methods,
    .tp_as_sequence = &Files_seq,
};


/* A stat shared by every descriptor of a kind (pipefs, the shared anonymous inode), taken once
 * per snapshot: cached in `shared` under key as (st_dev, st_size, st_ino). 0, or -1 with errno. */
static int shared_stat(PyObject *shared, PyObject *key, int dfd, const char *rel, struct stat *st) {
    PyObject *v = PyDict_GetItemWithError(shared, key);
    if (v) {
        if (!PyArg_ParseTuple(v, "KLK", (unsigned long long *)&st->st_dev, (long long *)&st->st_size,
                              (unsigned long long *)&st->st_ino))
            return -2;
        st->st_mode = 0;
        st->st_rdev = 0;
        return 0;
    }
    if (PyErr_Occurred()) return -2;
    if (fstatat(dfd, rel, st, 0) < 0) return -1;
    v = Py_BuildValue("(KLK)", (unsigned long long)st->st_dev, (long long)st->st_size,
                      (unsigned long long)st->st_ino);
    if (!v || PyDict_SetItem(shared, key, v) < 0) {
        Py_XDECREF(v);
        return -2;
    }
    Py_DECREF(v);
    return 0;
}

/* The number after a fdinfo line's key (p..eol, key klen bytes long) as Python's int(text, base)
 * reads it: 0 with *out, -1 where int() would raise ValueError. */
static int line_number(const char *p, const char *eol, Py_ssize_t klen, int base, long long *out) {
    char tmp[64];
    Py_ssize_t k = eol - p - klen;
    if (k <= 0 || k >= (Py_ssize_t)sizeof tmp) return -1;
    memcpy(tmp, p + klen, k);
    tmp[k] = 0;
    char *e;
    errno = 0;
    long long v = strtoll(tmp, &e, base);
    while (*e == ' ' || *e == '\t') e++;
    if (errno || *e || e == tmp) return -1;
    *out = v;
    return 0;
}

/* procfs.mode_letter of a /proc/PID/fd/N link's permission bits */
static sv mode_of(mode_t m) {
    int r = m & 0400, w = m & 0200;
    return r && w ? svs("u") : r ? svs("r") : w ? svs("w") : SNULL;
}

/* fdinfo's pos and access mode, parsed here only (without C, psutil gives them): 0 when both lines parsed,
 * -1 when one does not. */
static int parse_fdinfo(const char *b, Py_ssize_t n, long long *pos, int *has_pos, sv *mode) {
    const char *p = b, *end = b + n;
    *has_pos = 0;
    *mode = SNULL;
    while (p < end) {
        const char *eol = memchr(p, '\n', end - p);
        if (!eol) eol = end;
        if (eol - p >= 4 && memcmp(p, "pos:", 4) == 0) {
            if (line_number(p, eol, 4, 10, pos) < 0) return -1;
            *has_pos = 1;
        } else if (eol - p >= 6 && memcmp(p, "flags:", 6) == 0) {
            long long f;
            if (line_number(p, eol, 6, 8, &f) < 0) return -1;
            if (f & 010000000) *mode = SNULL; /* O_PATH */
            else if ((f & 3) == 0) *mode = svs("r");
            else if ((f & 3) == 1) *mode = svs("w");
            else if ((f & 3) == 2) *mode = svs("u");
            else *mode = SNULL;
            return 0;
        }
        p = eol + 1;
    }
    return 0;
}

/* fd_rows(files, fd_dir, info_dir, names, shared)
 *   files: the Files the rows go to (as its current process's, see Files.begin); fd_dir,
 *   info_dir: bytes ending in '/'; names: the fd names (str), in the order rows are wanted.
 * -> (sockets, gone, denied): (fd name, inode) of each socket descriptor (its mode is u), resolved
 *    later against the socket tables, so not in files. */
static PyObject *fd_rows(PyObject *self, PyObject *args) {
    const char *fd_dir, *info_dir;
    Py_ssize_t fd_len, info_len;
    PyObject *names, *shared;
    FilesObject *files;
    if (!PyArg_ParseTuple(args, "O!y#y#O!O!", &FilesType, &files, &fd_dir, &fd_len, &info_dir, &info_len,
                          &PyList_Type, &names, &PyDict_Type, &shared))
        return NULL;
    if (fd_len > 512 || info_len > 512) {
        PyErr_SetString(PyExc_ValueError, "fd_rows: folder path too long");
        return NULL;
    }
    char path[PBUF], target[TBUF], info[4096];
    memcpy(path, fd_dir, fd_len);
    /* Calls relative to the open folders: the kernel walks /proc/PID once per process, not once
     * per call per descriptor. */
    path[fd_len] = 0;
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ifdd = -1;
    PyObject *sockets = PyList_New(0);
    long gone = 0, denied = 0;
    if (!sockets) goto fail;
    if (dfd < 0) { /* the process is gone (or refuses): every name counts as gone, as per call */
        int e = errno;
        if (e == EACCES || e == EPERM) dfd = AT_FDCWD; /* per-descriptor calls then report it */
        else return Py_BuildValue("(Nll)", sockets, (long)PyList_GET_SIZE(names), 0L);
    }
    Py_ssize_t count = PyList_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *fd = PyList_GET_ITEM(names, i);
        Py_ssize_t nl;
        const char *ns = PyUnicode_AsUTF8AndSize(fd, &nl);
        if (!ns) goto fail;
        if (nl <= 0 || nl > 20) {
            gone++;
            continue;
        }
        long long fdnum = 0;
        for (Py_ssize_t k = 0; k < nl; k++) {
            if (ns[k] < '0' || ns[k] > '9') {
                PyErr_Format(PyExc_ValueError, "fd_rows: not a descriptor number: %R", fd);
                goto fail;
            }
            fdnum = fdnum * 10 + (ns[k] - '0');
        }
        sv fds = {ns, nl};
        memcpy(path + fd_len, ns, nl);
        path[fd_len + nl] = 0;
        struct stat st, lst;
        int err = 0;
        const char *rel = dfd == AT_FDCWD ? path : ns;
        ssize_t n = readlinkat(dfd, rel, target, sizeof target);
        if (n <= 0 || n >= (ssize_t)sizeof target) {
            err = n < 0 ? errno : n == 0 ? ENOENT : ENAMETOOLONG;
            goto oserror;
        }
        if (target[0] == '/') {
            if (fstatat(dfd, rel, &st, 0) < 0) {
                err = errno;
                goto oserror;
            }
            sv mode = SNULL;
            int parsed = 0, has_pos = 0;
            long long pos = 0;
            if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
                if (ifdd < 0) {
                    char ipath[PBUF];
                    memcpy(ipath, info_dir, info_len);
                    ipath[info_len] = 0;
                    ifdd = open(ipath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                    if (ifdd < 0) {
                        err = errno;
                        goto oserror;
                    }
                }
                int ifd = openat(ifdd, ns, O_RDONLY | O_CLOEXEC);
                if (ifd < 0) {
                    err = errno;
                    goto oserror;
                }
                ssize_t k = read(ifd, info, sizeof info);
                int rerr = errno;
                close(ifd);
                if (k < 0) {
                    err = rerr;
                    goto oserror;
                }
                parsed = parse_fdinfo(info, k, &pos, &has_pos, &mode) == 0;
                if (!parsed) has_pos = 0;
            }
            if (!parsed) {
                if (fstatat(dfd, rel, &lst, AT_SYMLINK_NOFOLLOW) < 0) {
                    err = errno;
                    goto oserror;
                }
                mode = mode_of(lst.st_mode);
            }
            if (path_row(files, fds, fdnum, 1, mode, pos, has_pos, target, n, &st) < 0) goto fail;
            continue;
        }
        unsigned long long ino;
        if (startswith(target, n, "socket:[") && bracket_ino(target, n, 8, &ino) == 0) {
            /* Every socket's file is opened O_RDWR (sock_alloc_file), so its link's mode is
               always u: no lstat (half of a busy host's descriptors are sockets). No row: the
               caller keeps sockets as columns until the socket tables resolve them. */
            PyObject *pair = Py_BuildValue("(OK)", fd, ino);
            if (!pair || PyList_Append(sockets, pair) < 0) {
                Py_XDECREF(pair);
                goto fail;
            }
            Py_DECREF(pair);
            continue;
        }
        if (fstatat(dfd, rel, &lst, AT_SYMLINK_NOFOLLOW) < 0) {
            err = errno;
            goto oserror;
        }
        sv mode = mode_of(lst.st_mode);
        /* pipes (all on pipefs) and the shared anonymous inodes: one stat per snapshot serves all */
        int pipe = startswith(target, n, "pipe:[") && bracket_ino(target, n, 6, &ino) == 0;
        if (pipe || (startswith(target, n, "anon_i") && is_shared_anon(target, n))) {
            PyObject *key = pipe ? (Py_INCREF(K_PIPE), K_PIPE) : PyUnicode_FromStringAndSize(target, n);
            int s = key ? shared_stat(shared, key, dfd, rel, &st) : -2;
            Py_XDECREF(key);
            if (s == -2) goto fail;
            if (s < 0) {
                gone++;
                continue;
            }
            if (pipe) st.st_ino = (ino_t)ino; /* the pipe's own inode, from its link */
            if (path_row(files, fds, fdnum, 1, mode, 0, 0, target, n, &st) < 0) goto fail;
            continue;
        }
        if (fstatat(dfd, rel, &st, 0) < 0) { /* any error here: closed while we looked */
            gone++;
            continue;
        }
        if (path_row(files, fds, fdnum, 1, mode, 0, 0, target, n, &st) < 0) goto fail;
        continue;
    oserror:
        if (err == EACCES || err == EPERM) { /* FileRows.add_denied */
            static const char suffix[] = " (readlink: Permission denied)";
            char name[PBUF + sizeof suffix];
            Py_ssize_t pn = (Py_ssize_t)strlen(path);
            memcpy(name, path, pn);
            memcpy(name + pn, suffix, sizeof suffix);
            frow r = {.fd = fds, .fdnum = fdnum, .has_fdnum = 1, .mode = SNULL, .type = svs("unknown"),
                      .device = SNULL, .proto = SNULL, .raw = SNULL};
            PyObject *keep;
            sv raw;
            if (name_sv(name, pn + (Py_ssize_t)sizeof suffix - 1, &r.name, &raw, &keep) < 0) goto fail;
            int res = files_row(files, &r);
            Py_XDECREF(keep);
            if (res < 0) goto fail;
            denied++;
            continue;
        }
        gone++;
    }
    if (dfd >= 0) close(dfd);
    if (ifdd >= 0) close(ifdd);
    return Py_BuildValue("(Nll)", sockets, gone, denied);
fail:
    if (dfd >= 0) close(dfd);
    if (ifdd >= 0) close(ifdd);
    Py_XDECREF(sockets);
    return NULL;
}


/* proc_links(files, proc_dir) -> (exe_key, refused, denied, gone): the cwd, rtd and txt rows of a
 * process (proc_dir: bytes, /proc/PID/) added to files as descriptors.process_files made them in
 * Python: a link that refuses (EACCES, EPERM) gives lsof's "(readlink: Permission denied)" row
 * (counted in denied; refused: the names of those links but exe); one that is gone (ENOENT,
 * ESRCH) gives no row, or for exe an "unknown" row (kernel threads and zombies have none), unless
 * the process itself is gone (no stat file): then gone is True and the rows stop. A link whose
 * target does not stat gets an "unknown" row with its target. exe_key: (device, inode) of the
 * executable's row, or None. Other errors raise OSError. */
static PyObject *proc_links(PyObject *self, PyObject *args) {
    FilesObject *files;
    const char *dir;
    Py_ssize_t dn;
    if (!PyArg_ParseTuple(args, "O!y#", &FilesType, &files, &dir, &dn)) return NULL;
    if (dn > 512) {
        PyErr_SetString(PyExc_ValueError, "proc_links: folder path too long");
        return NULL;
    }
    static const char *links[3] = {"cwd", "root", "exe"}, *fds[3] = {"cwd", "rtd", "txt"};
    char path[PBUF], target[TBUF], dbuf[48];
    memcpy(path, dir, dn);
    path[dn] = 0;
    int pdfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    PyObject *exe = Py_NewRef(Py_None), *refused = PyList_New(0);
    long denied = 0;
    int gone = 0;
    if (!refused) goto fail;
    for (int i = 0; i < 3 && !gone; i++) {
        strcpy(path + dn, links[i]);
        const char *rel = pdfd >= 0 ? links[i] : path;
        int dfd = pdfd >= 0 ? pdfd : AT_FDCWD;
        ssize_t n = readlinkat(dfd, rel, target, sizeof target);
        int err = n < 0 ? errno : n >= (ssize_t)sizeof target ? ENAMETOOLONG : 0;
        if (err == EACCES || err == EPERM) {
            static const char suffix[] = " (readlink: Permission denied)";
            char name[PBUF + sizeof suffix];
            Py_ssize_t pn = (Py_ssize_t)strlen(path);
            memcpy(name, path, pn);
            memcpy(name + pn, suffix, sizeof suffix);
            frow r = {.fd = svs(fds[i]), .type = svs("unknown"), .name = {name, pn + (Py_ssize_t)sizeof suffix - 1}};
            if (files_row(files, &r) < 0) goto fail;
            denied++;
            if (i < 2) {
                PyObject *s = PyUnicode_FromString(links[i]);
                if (!s || PyList_Append(refused, s) < 0) {
                    Py_XDECREF(s);
                    goto fail;
                }
                Py_DECREF(s);
            }
            continue;
        }
        if (err == ENOENT || err == ESRCH) {
            struct stat pst;
            strcpy(path + dn, "stat");
            if (fstatat(dfd, pdfd >= 0 ? "stat" : path, &pst, 0) < 0) {
                gone = 1;
                break;
            }
            strcpy(path + dn, links[i]);
            if (i == 2) {
                frow r = {.fd = svs("txt"), .type = svs("unknown"), .name = {path, (Py_ssize_t)strlen(path)}};
                if (files_row(files, &r) < 0) goto fail;
            }
            continue;
        }
        if (err) {
            errno = err;
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
            goto fail;
        }
        struct stat st;
        if (fstatat(dfd, rel, &st, 0) < 0) { /* FileRows.add_path without a stat */
            frow r = {.fd = svs(fds[i]), .type = svs("unknown")};
            PyObject *keep;
            if (name_sv(target, n, &r.name, &r.raw, &keep) < 0) goto fail;
            int res = files_row(files, &r);
            Py_XDECREF(keep);
            if (res < 0) goto fail;
            continue;
        }
        if (path_row(files, svs(fds[i]), 0, 0, SNULL, 0, 0, target, n, &st) < 0) goto fail;
        if (i == 2 && !startswith(target, n, "anon_inode:") && !startswith(target, n, "pipe:[")) {
            sv d;
            dev_sv(dbuf, sizeof dbuf, (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) ? st.st_rdev : st.st_dev, &d);
            Py_SETREF(exe, Py_BuildValue("(s#K)", d.s, d.n, (unsigned long long)st.st_ino));
            if (!exe) goto fail;
        }
    }
    if (pdfd >= 0) close(pdfd);
    return Py_BuildValue("(NNlO)", exe, refused, denied, gone ? Py_True : Py_False);
fail:
    if (pdfd >= 0) close(pdfd);
    Py_XDECREF(exe);
    Py_XDECREF(refused);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading small /proc files relative to an open folder. */

/* The whole of dirfd/name into buf (grown as needed): its length, or -errno. */
static Py_ssize_t read_at(int dirfd, const char *name, char **buf, Py_ssize_t *cap, int to_eof) {
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    Py_ssize_t n = 0;
    for (;;) {
        if (n == *cap) {
            Py_ssize_t c = *cap * 2;
            char *b = PyMem_Realloc(*buf, c);
            if (!b) {
                close(fd);
                return -ENOMEM;
            }
            *buf = b;
            *cap = c;
        }
        ssize_t k = read(fd, *buf + n, *cap - n);
        if (k < 0) {
            int e = errno;
            if (e == EINTR) continue;
            close(fd);
            return -e;
        }
        if (k == 0) break;
        n += k;
        /* /proc records (stat, status, io, …) come whole in one read when shorter than the
         * buffer: a second read would only find EOF (procfs.read_one). */
        if (!to_eof && n < *cap && n < 65536 && *cap >= 65536) break;
    }
    close(fd);
    return n;
}

/* read_files(folder, names) -> [bytes or int]: each file of folder/ (int: the errno that refused or
 * missed it; all ENOENT when the folder itself is gone). Single-record files (stat, status, io, …)
 * come whole in one read shorter than the buffer (procfs.read_one). */
static PyObject *read_files(PyObject *self, PyObject *args) {
    PyObject *dir, *names;
    if (!PyArg_ParseTuple(args, "O&O!", PyUnicode_FSConverter, &dir, &PyTuple_Type, &names)) return NULL;
    int dfd = open(PyBytes_AS_STRING(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int derr = dfd < 0 ? errno : 0;
    Py_DECREF(dir);
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    PyObject *out = PyList_New(count);
    Py_ssize_t cap = 65536;
    char *buf = PyMem_Malloc(cap);
    if (!out || !buf) goto fail;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v;
        if (dfd < 0) {
            v = PyLong_FromLong(derr);
        } else {
            const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(names, i));
            if (!name) goto fail;
            Py_ssize_t n = read_at(dfd, name, &buf, &cap, 0);
            if (n == -ENOMEM) {
                PyErr_NoMemory();
                goto fail;
            }
            v = n < 0 ? PyLong_FromLong(-n) : PyBytes_FromStringAndSize(buf, n);
        }
        if (!v) goto fail;
        PyList_SET_ITEM(out, i, v);
    }
    if (dfd >= 0) close(dfd);
    PyMem_Free(buf);
    return out;
fail:
    if (dfd >= 0) close(dfd);
    PyMem_Free(buf);
    Py_XDECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Taskstats: a task's counters over generic netlink (linux/taskstats.h), one request and one
 * answer per task. The kernel fills it from the task itself, where a thread's status file formats
 * some 55 lines for the two context switch counts thread_rows takes from it. Asking needs
 * CAP_NET_ADMIN; where it is refused or absent the callers read status instead. */

static int ts_sock = -1;    /* the netlink socket, opened on first use */
static pid_t ts_owner = 0;  /* the process it belongs to: a forked child opens its own */
static int ts_family = 0;   /* the TASKSTATS family id; 0 while unknown */
static int ts_refused = 0;  /* the errno that made taskstats unusable in this process, else 0 */
static __u32 ts_seq = 0;

/* Send one generic netlink request of one attribute; 0 or -errno. */
static int ts_send(__u16 type, __u8 cmd, __u16 attr, const void *data, int len) {
    struct {
        struct nlmsghdr n;
        struct genlmsghdr g;
        char a[NLA_HDRLEN + 64];
    } r;
    if (len > 64) return -EINVAL;
    memset(&r, 0, sizeof r);
    r.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(NLA_HDRLEN + len);
    r.n.nlmsg_type = type;
    r.n.nlmsg_flags = NLM_F_REQUEST;
    r.n.nlmsg_seq = ++ts_seq;
    r.g.cmd = cmd;
    r.g.version = 1;
    struct nlattr *na = (struct nlattr *)r.a;
    na->nla_type = attr;
    na->nla_len = NLA_HDRLEN + len;
    memcpy(r.a + NLA_HDRLEN, data, len);
    struct sockaddr_nl to = {.nl_family = AF_NETLINK};
    for (;;) {
        if (sendto(ts_sock, &r, r.n.nlmsg_len, 0, (struct sockaddr *)&to, sizeof to) >= 0) return 0;
        if (errno != EINTR) return -errno;
    }
}

/* The answer to the last request, in BUF: the generic netlink payload's attributes (*attrs, *len), or
 * -errno (the kernel's refusal, or -EAGAIN when none came). The kernel answers within sendto, so
 * nothing is waited for; an answer to an earlier request (one left unread) is skipped. */
static int ts_recv(char *buf, size_t cap, struct nlattr **attrs, int *len) {
    for (;;) {
        ssize_t n = recv(ts_sock, buf, cap, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (!NLMSG_OK(h, (size_t)n)) return -EBADMSG;
        if (h->nlmsg_seq != ts_seq) continue;
        if (h->nlmsg_type == NLMSG_ERROR) {
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return -EBADMSG;
            int e = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
            return e < 0 ? e : -EBADMSG;
        }
        if (h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN)) return -EBADMSG;
        *attrs = (struct nlattr *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
        *len = (int)(h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN));
        return 0;
    }
}

/* The first attribute of TYPE among LEN bytes of attributes, or NULL. */
static struct nlattr *ts_attr(struct nlattr *a, int len, int type) {
    while (len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len) {
        if ((a->nla_type & NLA_TYPE_MASK) == type) return a;
        len -= NLA_ALIGN(a->nla_len);
        a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
    }
    return NULL;
}

/* The socket and the family id, opened once per process; 0 or -errno (kept: not tried again). */
static int ts_open(void) {
    pid_t me = getpid();
    if (ts_owner == me) return ts_refused ? -ts_refused : 0;
    if (ts_sock >= 0) close(ts_sock); /* the parent's, inherited through fork */
    ts_sock = -1;
    ts_family = 0;
    ts_refused = 0;
    ts_owner = me;
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (s < 0) return -(ts_refused = errno);
    struct sockaddr_nl me_addr = {.nl_family = AF_NETLINK};
    if (bind(s, (struct sockaddr *)&me_addr, sizeof me_addr) < 0) {
        ts_refused = errno;
        close(s);
        return -ts_refused;
    }
    ts_sock = s;
    char buf[4096];
    struct nlattr *a;
    int len, e = ts_send(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME,
                         sizeof TASKSTATS_GENL_NAME);
    if (!e) e = ts_recv(buf, sizeof buf, &a, &len);
    struct nlattr *id = e ? NULL : ts_attr(a, len, CTRL_ATTR_FAMILY_ID);
    if (!id || id->nla_len < NLA_HDRLEN + sizeof(__u16)) {
        ts_refused = e ? -e : ENOENT;
        close(s);
        ts_sock = -1;
        return -ts_refused;
    }
    memcpy(&ts_family, (char *)id + NLA_HDRLEN, sizeof(__u16));
    return 0;
}

/* The taskstats of task TID (a thread id as this process's pid namespace numbers it) into *OUT,
 * zeroed past what the kernel sent: the number of its bytes that were sent, or -errno (-ESRCH: no
 * such task; -EPERM: not allowed, and then taskstats is not asked again in this process). */
static int ts_get(__u32 tid, struct taskstats *out) {
    int e = ts_open();
    if (e) return e;
    char buf[4096];
    struct nlattr *a;
    int len;
    e = ts_send((__u16)ts_family, TASKSTATS_CMD_GET, TASKSTATS_CMD_ATTR_PID, &tid, sizeof tid);
    if (!e) e = ts_recv(buf, sizeof buf, &a, &len);
    if (e == -EPERM || e == -EACCES) ts_refused = -e;
    if (e) return e;
    struct nlattr *agg = ts_attr(a, len, TASKSTATS_TYPE_AGGR_PID);
    struct nlattr *st = agg ? ts_attr((struct nlattr *)((char *)agg + NLA_HDRLEN), agg->nla_len - NLA_HDRLEN,
                                      TASKSTATS_TYPE_STATS)
                            : NULL;
    if (!st) return -EBADMSG;
    int n = st->nla_len - NLA_HDRLEN;
    if (n > (int)sizeof *out) n = sizeof *out;
    memset(out, 0, sizeof *out);
    memcpy(out, (char *)st + NLA_HDRLEN, n);
    return n;
}

/* Whether a taskstats answer of N bytes holds FIELD. */
#define TS_HAS(n, field) ((size_t)(n) >= offsetof(struct taskstats, field) + sizeof(((struct taskstats *)0)->field))

/* The context switches of thread TID of process TGID from taskstats: 1 with *vol and *invol, 0 when
 * taskstats cannot tell (refused, absent, the task gone, or the answer is of another task: a tid
 * reused, or a /proc of another pid namespace; a kernel whose answer has no ac_tgid cannot say). */
static int ts_ctxsw(long long tid, long long tgid, long long *vol, long long *invol) {
    struct taskstats t;
    if (tid <= 0 || tid > 0xffffffffLL) return 0;
    int n = ts_get((__u32)tid, &t);
    if (n < 0 || !TS_HAS(n, nivcsw) || t.ac_pid != (__u32)tid) return 0;
#if TASKSTATS_VERSION >= 12
    if (t.version < 12 || !TS_HAS(n, ac_tgid) || t.ac_tgid != (__u32)tgid) return 0;
#else
    return 0;
#endif
    if (t.nvcsw > 9223372036854775807ULL || t.nivcsw > 9223372036854775807ULL) return 0;
    *vol = (long long)t.nvcsw;
    *invol = (long long)t.nivcsw;
    return 1;
}

static PyTypeObject TaskstatsType;
static PyStructSequence_Field taskstats_fields[] = {
    {"pid", "the task's id (a thread's tid)"},
    {"tgid", "its process's pid; None where the kernel does not say (before version 12)"},
    {"ppid", NULL}, {"uid", NULL}, {"gid", NULL}, {"comm", "bytes"}, {"btime", "start, seconds since the epoch"},
    {"utime", "microseconds"}, {"stime", "microseconds"}, {"minflt", NULL}, {"majflt", NULL},
    {"ctxsw_voluntary", NULL}, {"ctxsw_involuntary", NULL},
    {"version", "the struct's version (TASKSTATS_VERSION of the kernel that sent it)"},
    {"exitcode", "ac_exitcode: the exit's wait status"},
    {"etime", "elapsed time since the start, microseconds"},
    {"hiwater_rss", "peak resident memory, KiB"},
    {"read_char", "bytes read (read(2) and the like)"}, {"write_char", "bytes written"},
    {"read_bytes", "bytes read from storage"}, {"write_bytes", "bytes written to storage"},
    {"cpu_delay_total", "ns waiting for a CPU"}, {"blkio_delay_total", "ns waiting for block I/O"},
    {"swapin_delay_total", "ns waiting for swap-in"},
    {NULL, NULL}};
#define TS_NFIELDS 24
static PyStructSequence_Desc taskstats_desc = {"recorder.source._native.Taskstats",
                                               "One struct taskstats (linux/taskstats.h)", taskstats_fields,
                                               TS_NFIELDS};

/* The Taskstats of a struct taskstats of which the kernel sent N bytes (the rest zeroed); None (a
 * new reference) when N is too short or the version older than 7, the first with every field read. */
static PyObject *ts_build(struct taskstats *t, int n) {
    if (n < (int)sizeof t->version || t->version < 7 || !TS_HAS(n, nivcsw)) Py_RETURN_NONE;
    PyObject *r = PyStructSequence_New(&TaskstatsType);
    if (!r) return NULL;
    int has_tgid = 0;
    unsigned long long tg = 0;
#if TASKSTATS_VERSION >= 12
    has_tgid = t->version >= 12 && TS_HAS(n, ac_tgid);
    tg = t->ac_tgid;
#endif
    t->ac_comm[TS_COMM_LEN - 1] = 0;
    PyObject *items[TS_NFIELDS] = {
        PyLong_FromUnsignedLong(t->ac_pid),
        has_tgid ? PyLong_FromUnsignedLongLong(tg) : (Py_INCREF(Py_None), Py_None),
        PyLong_FromUnsignedLong(t->ac_ppid),
        PyLong_FromUnsignedLong(t->ac_uid),
        PyLong_FromUnsignedLong(t->ac_gid),
        PyBytes_FromString(t->ac_comm),
        PyLong_FromUnsignedLong(t->ac_btime),
        PyLong_FromUnsignedLongLong(t->ac_utime),
        PyLong_FromUnsignedLongLong(t->ac_stime),
        PyLong_FromUnsignedLongLong(t->ac_minflt),
        PyLong_FromUnsignedLongLong(t->ac_majflt),
        PyLong_FromUnsignedLongLong(t->nvcsw),
        PyLong_FromUnsignedLongLong(t->nivcsw),
        PyLong_FromUnsignedLong(t->version),
        PyLong_FromUnsignedLong(t->ac_exitcode),
        PyLong_FromUnsignedLongLong(t->ac_etime),
        PyLong_FromUnsignedLongLong(t->hiwater_rss),
        PyLong_FromUnsignedLongLong(t->read_char),
        PyLong_FromUnsignedLongLong(t->write_char),
        PyLong_FromUnsignedLongLong(t->read_bytes),
        PyLong_FromUnsignedLongLong(t->write_bytes),
        PyLong_FromUnsignedLongLong(t->cpu_delay_total),
        PyLong_FromUnsignedLongLong(t->blkio_delay_total),
        PyLong_FromUnsignedLongLong(t->swapin_delay_total)};
    int ok = 1;
    for (int i = 0; i < TS_NFIELDS; i++) {
        if (!items[i]) ok = 0;
        PyStructSequence_SetItem(r, i, items[i]); /* a NULL item is left NULL: r is dropped below */
    }
    if (!ok) {
        for (int i = 0; i < TS_NFIELDS; i++)
            if (!items[i]) PyStructSequence_SetItem(r, i, (Py_INCREF(Py_None), Py_None));
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

/* taskstats(tid) -> Taskstats; OSError with the kernel's errno (ESRCH: no such task; EPERM: not
 * allowed, CAP_NET_ADMIN is needed; ENOENT: no taskstats in this kernel). */
static PyObject *py_taskstats(PyObject *self, PyObject *arg) {
    long long tid = PyLong_AsLongLong(arg);
    if (tid == -1 && PyErr_Occurred()) return NULL;
    if (tid <= 0 || tid > 0xffffffffLL) {
        errno = ESRCH;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    struct taskstats t;
    int n = ts_get((__u32)tid, &t);
    if (n < 0) {
        errno = -n;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *r = ts_build(&t, n);
    if (r == Py_None) {
        Py_DECREF(r);
        errno = EBADMSG;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return r;
}

/* parse_taskstats(payload) -> Taskstats or None: a struct taskstats as the kernel sends it (a
 * TASKSTATS_TYPE_STATS attribute's payload, its exit records' too); None when too short or older
 * than version 7. The one reader of the struct: proc_events' exit listener uses it as well. */
static PyObject *py_parse_taskstats(PyObject *self, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    struct taskstats t;
    memset(&t, 0, sizeof t);
    int n = b.len > (Py_ssize_t)sizeof t ? (int)sizeof t : (int)b.len;
    memcpy(&t, b.buf, n);
    PyBuffer_Release(&b);
    return ts_build(&t, n);
}

/* taskstats_family() -> int: the TASKSTATS generic netlink family's id, asked of the kernel once
 * per process; OSError as taskstats(tid) (ENOENT: no taskstats in this kernel). */
static PyObject *py_taskstats_family(PyObject *self, PyObject *noargs) {
    int e = ts_open();
    if (e) {
        errno = -e;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(ts_family);
}

/* ------------------------------------------------------------------------------------------ */
/* Threads. */

/* One integer token of a kernel field: [+-]digits, within int64. */
static int int_tok(const char *b, Py_ssize_t n, long long *out) {
    Py_ssize_t i = 0;
    int neg = 0;
    if (n > 0 && (b[0] == '-' || b[0] == '+')) {
        neg = b[0] == '-';
        i = 1;
    }
    if (i >= n) return -1;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (b[i] < '0' || b[i] > '9') return -1;
        if (v > (9223372036854775808ULL - (b[i] - '0')) / 10) return -1;
        v = v * 10 + (b[i] - '0');
    }
    if (!neg && v > 9223372036854775807ULL) return -1;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

#define I32_OK(v) ((v) >= -2147483648LL && (v) <= 2147483647LL)

/* The fields of a stat file (/proc/PID/stat, /proc/PID/task/TID/stat); parse_stat() gives -1 for
 * content the kernel does not write (too few fields, a number that is not one or does not fit its
 * column, a start time past 2^40 ticks), which the callers raise as ValueError. */
typedef struct {
    const char *comm;
    Py_ssize_t comm_len;
    const char *state;
    Py_ssize_t state_len;
    long long v[40];
    int nf;
} statf;

static int parse_stat(const char *b, Py_ssize_t n, statf *o) {
    if (n <= 0) return -1;
    const char *lp = memchr(b, '(', n), *rp = NULL;
    for (const char *p = b + n - 1; p >= b; p--)
        if (*p == ')') {
            rp = p;
            break;
        }
    if (!lp || !rp || rp < lp) return -1;
    long long pid;
    /* int(data[:lp]): the pid, blanks around it allowed (those bytes.strip() takes) */
#define STAT_BLANK(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' || (c) == '\v' || (c) == '\f')
    const char *a = b, *z = lp;
    while (a < z && STAT_BLANK(*a)) a++;
    while (z > a && STAT_BLANK(z[-1])) z--;
#undef STAT_BLANK
    if (int_tok(a, z - a, &pid) < 0 || !I32_OK(pid)) return -1;
    o->comm = lp + 1;
    o->comm_len = rp - lp - 1;
    const char *p = rp + 2, *end = b + n;
    if (p > end) p = end;
    int k = 0;
    o->state = NULL;
    while (p < end && k < 38) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f')) p++;
        if (p >= end) break;
        const char *t = p;
        while (p < end && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f')) p++;
        if (k == 0) {
            o->state = t;
            o->state_len = p - t;
        } else if (k == 1 || k == 2 || k == 3 || k == 4 || k == 6 || k == 7 || k == 9 || k == 11 ||
                   k == 12 || k == 15 || k == 16 || k == 17 || k == 19 || k == 20 || k == 21 || k == 36) {
            if (int_tok(t, p - t, &o->v[k]) < 0) return -1;
        }
        k++;
    }
    /* fields procsnap does not keep are not checked either; count them all */
    o->nf = k;
    if (k >= 38) { /* more fields than we keep: still only a count for len(f) > 36 */
        o->nf = 38;
    }
    if (o->nf < 20) return -1;
    long long st = o->v[19];
    if (st < 0 || st >= (1LL << 40)) return -1;
    if (!I32_OK(o->v[1]) || !I32_OK(o->v[2]) || !I32_OK(o->v[3]) || !I32_OK(o->v[15]) || !I32_OK(o->v[16]) ||
        !I32_OK(o->v[17]))
        return -1;
    if (o->nf > 36 && !I32_OK(o->v[36])) return -1;
    return 0;
}

/* A thread's context switches from its status, one key: 1 with *v, 0 when absent or not digits, -1
 * past int64. */
static int status_num(const char *b, Py_ssize_t n, const char *key, long long *v) {
    Py_ssize_t kl = (Py_ssize_t)strlen(key);
    const char *p = NULL;
    for (const char *q = b; q + kl <= b + n; q++) {
        q = memchr(q, key[0], b + n - q);
        if (!q || q + kl > b + n) break;
        if (memcmp(q, key, kl) == 0) {
            p = q;
            break;
        }
    }
    if (!p) return 0;
    p += kl;
    const char *e = memchr(p, '\n', b + n - p);
    if (!e) e = b + n;
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f')) p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\v' || e[-1] == '\f')) e--;
    if (e == p) return 0;
    unsigned long long x = 0;
    for (const char *q = p; q < e; q++) {
        if (*q < '0' || *q > '9') return 0;
        if (x > (18446744073709551615ULL - 9) / 10) return -1;
        x = x * 10 + (*q - '0');
    }
    if (x > 9223372036854775807ULL) return -1;
    *v = (long long)x;
    return 1;
}

/* The names in an open folder (not '.' and '..'), as os.listdir gives them; NULL with an error. */
static PyObject *dir_names(int dfd) {
    int d2 = dup(dfd);
    DIR *D = d2 >= 0 ? fdopendir(d2) : NULL;
    if (!D) {
        if (d2 >= 0) close(d2);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *names = PyList_New(0);
    struct dirent *e;
    while (names && (errno = 0, e = readdir(D))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        PyObject *n = PyUnicode_DecodeFSDefault(e->d_name);
        if (!n || PyList_Append(names, n) < 0) Py_CLEAR(names);
        Py_XDECREF(n);
    }
    if (names && errno) {
        Py_CLEAR(names);
        PyErr_SetFromErrno(PyExc_OSError);
    }
    closedir(D);
    return names;
}

static PyTypeObject ThreadType; /* thread_rows' rows: see thread_desc */

/* thread_rows(task_dir, names[, leader_tid, voluntary, involuntary[, tgid]]) -> (rows, gone, denied)
 *   rows: a Thread (tid, comm bytes, state, priority, nice, processor|None, utime, stime, minflt,
 *          majflt, starttime ticks, voluntary|None, involuntary|None) per thread that read and parsed.
 * Per thread: stat then status; gone or unparsable counts as gone,
 * refused as denied. The thread LEADER_TID's status is not read: its context switches are
 * VOLUNTARY and INVOLUNTARY, which the caller read from /proc/PID/status (the kernel prints the
 * leader's own counts there, not the process's sum); LEADER_TID -1: none. TGID > 0: the folder is
 * the live /proc's task folder of process TGID, and the other threads' context switches come from
 * taskstats (ts_ctxsw) where it answers, from their status file where it does not. NAMES None: the
 * folder's entries, listed here (None returned when the folder does not open: the caller lists it
 * and meets the error). */
static PyObject *thread_rows(PyObject *self, PyObject *args) {
    PyObject *dir, *names, *lvol = Py_None, *linvol = Py_None;
    long long leader = -1, tgid = 0;
    if (!PyArg_ParseTuple(args, "O&O|LOOL", PyUnicode_FSConverter, &dir, &names, &leader, &lvol, &linvol, &tgid))
        return NULL;
    if (names != Py_None && !PyList_Check(names)) {
        Py_DECREF(dir);
        PyErr_SetString(PyExc_TypeError, "thread_rows: names must be a list or None");
        return NULL;
    }
    int dfd = open(PyBytes_AS_STRING(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int derr = errno;
    Py_DECREF(dir);
    if (names == Py_None) { /* the folder's names, read here: one open of it, not two */
        if (dfd < 0) Py_RETURN_NONE; /* the caller lists it itself, and meets the error */
        names = dir_names(dfd);
        if (!names) {
            close(dfd);
            return NULL;
        }
    } else
        Py_INCREF(names);
    Py_ssize_t count = PyList_GET_SIZE(names);
    if (dfd < 0) {
        Py_DECREF(names);
        if (derr == EACCES || derr == EPERM) return Py_BuildValue("([]ln)", 0L, count);
        return Py_BuildValue("([]nl)", count, 0L);
    }
    PyObject *rows = PyList_New(0);
    Py_ssize_t cap = 65536, cap2 = 65536;
    char *buf = PyMem_Malloc(cap), *buf2 = PyMem_Malloc(cap2);
    long gone = 0, denied = 0;
    if (!rows || !buf || !buf2) goto fail;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *tid = PyList_GET_ITEM(names, i);
        Py_ssize_t tl;
        const char *ts = PyUnicode_AsUTF8AndSize(tid, &tl);
        if (!ts) goto fail;
        char rel[64];
        if (tl > 40) {
            gone++;
            continue;
        }
        snprintf(rel, sizeof rel, "%s/stat", ts);
        Py_ssize_t n = read_at(dfd, rel, &buf, &cap, 0);
        statf f;
        if (n >= 0 && parse_stat(buf, n, &f) < 0) {
            gone++;
            continue;
        }
        if (n >= 0) {
            PyObject *tidn = PyLong_FromUnicodeObject(tid, 10);
            if (!tidn) goto fail;
            long long tidv = PyLong_AsLongLong(tidn);
            if (PyErr_Occurred()) { /* a tid beyond long long: neither the leader nor asked of taskstats */
                PyErr_Clear();
                tidv = -1;
            }
            int is_leader = leader >= 0 && tidv == leader;
            long long vol = 0, invol = 0;
            int hv = 0, hi = 0, from_ts = 0;
            Py_ssize_t m = 0;
            if (!is_leader && tgid > 0 && ts_ctxsw(tidv, tgid, &vol, &invol)) from_ts = hv = hi = 1;
            if (!is_leader && !from_ts) {
                snprintf(rel, sizeof rel, "%s/status", ts);
                m = read_at(dfd, rel, &buf2, &cap2, 0);
            }
            if (m < 0) {
                n = m;
                Py_DECREF(tidn);
            } else {
                if (!is_leader && !from_ts &&
                    ((hv = status_num(buf2, m, "\nvoluntary_ctxt_switches:", &vol)) < 0 ||
                     (hi = status_num(buf2, m, "\nnonvoluntary_ctxt_switches:", &invol)) < 0)) {
                    Py_DECREF(tidn);
                    gone++;
                    continue;
                }
                PyObject *state = f.state ? PyUnicode_DecodeASCII(f.state, f.state_len, "replace")
                                          : PyUnicode_FromString("");
                PyObject *proc = f.nf > 36 ? PyLong_FromLongLong(f.v[36]) : (Py_INCREF(Py_None), Py_None);
                PyObject *vo, *io;
                if (is_leader) {
                    vo = lvol;
                    io = linvol;
                    Py_INCREF(vo);
                    Py_INCREF(io);
                } else {
                    vo = hv ? PyLong_FromLongLong(vol) : (Py_INCREF(Py_None), Py_None);
                    io = hi ? PyLong_FromLongLong(invol) : (Py_INCREF(Py_None), Py_None);
                }
                PyObject *r = NULL;
                if (tidn && state && proc && vo && io && (r = PyStructSequence_New(&ThreadType))) {
                    PyObject *items[13] = {tidn, PyBytes_FromStringAndSize(f.comm, f.comm_len), state,
                                           PyLong_FromLongLong(f.v[15]), PyLong_FromLongLong(f.v[16]), proc,
                                           PyLong_FromLongLong(f.v[11]), PyLong_FromLongLong(f.v[12]),
                                           PyLong_FromLongLong(f.v[7]), PyLong_FromLongLong(f.v[9]),
                                           PyLong_FromLongLong(f.v[19]), vo, io};
                    tidn = state = proc = vo = io = NULL; /* the items own them now */
                    for (int j = 0; j < 13; j++) {
                        if (!items[j]) {
                            for (int k = j; k < 13; k++) Py_XDECREF(items[k]);
                            Py_CLEAR(r);
                            break;
                        }
                        PyStructSequence_SetItem(r, j, items[j]);
                    }
                }
                Py_XDECREF(tidn);
                Py_XDECREF(state);
                Py_XDECREF(proc);
                Py_XDECREF(vo);
                Py_XDECREF(io);
                if (!r || PyList_Append(rows, r) < 0) {
                    Py_XDECREF(r);
                    goto fail;
                }
                Py_DECREF(r);
                continue;
            }
        }
        if (n == -ENOMEM) {
            PyErr_NoMemory();
            goto fail;
        }
        if (n == -EACCES || n == -EPERM) denied++;
        else gone++;
    }
    close(dfd);
    PyMem_Free(buf);
    PyMem_Free(buf2);
    Py_DECREF(names);
    return Py_BuildValue("(Nll)", rows, gone, denied);
fail:
    close(dfd);
    PyMem_Free(buf);
    PyMem_Free(buf2);
    Py_XDECREF(rows);
    Py_DECREF(names);
    return NULL;
}


/* ------------------------------------------------------------------------------------------ */
/* Mapped files. */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static int hexval(const char *b, const char *e, unsigned long long *v) {
    if (b >= e || e - b > 15) return -1;
    unsigned long long x = 0;
    for (; b < e; b++) {
        if (*b >= '0' && *b <= '9') x = x * 16 + (*b - '0');
        else if (*b >= 'a' && *b <= 'f') x = x * 16 + (*b - 'a' + 10);
        else return -1;
    }
    *v = x;
    return 0;
}

/* The (major, minor, inode) of the files a process maps, seen so far: a process maps a few dozen,
 * a linear scan over them is cheaper than a Python object per mapping. */
typedef struct {
    unsigned long long (*v)[3];
    Py_ssize_t n, cap;
} fileset;

static int fileset_init(fileset *s) {
    s->n = 0;
    s->cap = 64;
    s->v = PyMem_Malloc(s->cap * sizeof *s->v);
    if (!s->v) PyErr_NoMemory();
    return s->v ? 0 : -1;
}

static int fileset_has(const fileset *s, unsigned long long maj, unsigned long long min, unsigned long long ino) {
    for (Py_ssize_t k = 0; k < s->n; k++)
        if (s->v[k][2] == ino && s->v[k][0] == maj && s->v[k][1] == min) return 1;
    return 0;
}

static int fileset_add(fileset *s, unsigned long long maj, unsigned long long min, unsigned long long ino) {
    if (s->n == s->cap) {
        void *g = PyMem_Realloc(s->v, 2 * s->cap * sizeof *s->v);
        if (!g) {
            PyErr_NoMemory();
            return -1;
        }
        s->v = g;
        s->cap *= 2;
    }
    s->v[s->n][0] = maj;
    s->v[s->n][1] = min;
    s->v[s->n][2] = ino;
    s->n++;
    return 0;
}

/* maps_distinct(data) -> [(start-end, "major,minor", inode, path bytes)]: procfs.parse_maps, keeping
 * only the first mapping of each (device, inode), as descriptors._maps_rows does with them. */
static PyObject *maps_distinct(PyObject *self, PyObject *args) {
    const char *b;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y#", &b, &n)) return NULL;
    fileset seen = {NULL, 0, 0};
    PyObject *out = PyList_New(0);
    if (!out || fileset_init(&seen) < 0) goto fail;
    const char *p = b, *end = b + n;
    while (p < end) {
        const char *eol = memchr(p, '\n', end - p);
        if (!eol) eol = end;
        const char *f[5], *fe[5], *q = p;
        int ok = 1;
        for (int i = 0; i < 5 && ok; i++) {
            if (i > 0) {
                if (q >= eol || *q != ' ') ok = 0;
                else q++;
            }
            f[i] = q;
            while (q < eol && !is_ws(*q)) q++;
            fe[i] = q;
            if (fe[i] == f[i]) ok = 0;
        }
        if (ok) { /* one or more spaces, then a path from '/' to the end of the line */
            const char *sp = q;
            while (q < eol && *q == ' ') q++;
            if (q == sp || q >= eol || *q != '/') ok = 0;
        }
        unsigned long long maj = 0, min = 0, ino = 0;
        if (ok) {
            const char *colon = memchr(f[3], ':', fe[3] - f[3]);
            if (!colon || hexval(f[3], colon, &maj) < 0 || hexval(colon + 1, fe[3], &min) < 0) ok = 0;
        }
        if (ok) {
            if (fe[4] - f[4] > 19) ok = 0;
            for (const char *c = f[4]; ok && c < fe[4]; c++) {
                if (*c < '0' || *c > '9') ok = 0;
                else ino = ino * 10 + (*c - '0');
            }
        }
        if (ok && ino != 0 && !fileset_has(&seen, maj, min, ino)) {
            if (fileset_add(&seen, maj, min, ino) < 0) goto fail;
            PyObject *r = Py_BuildValue("(s#NKy#)", f[0], (Py_ssize_t)(fe[0] - f[0]),
                                        PyUnicode_FromFormat("%llu,%llu", maj, min), ino, q, (Py_ssize_t)(eol - q));
            if (!r || PyList_Append(out, r) < 0) {
                Py_XDECREF(r);
                goto fail;
            }
            Py_DECREF(r);
        }
        p = eol + 1;
    }
    PyMem_Free(seen.v);
    return out;
fail:
    PyMem_Free(seen.v);
    Py_XDECREF(out);
    return NULL;
}


/* ------------------------------------------------------------------------------------------ */
/* Socket tables: what sockets.inet_records makes of procfs.parse_inet rows, from the same lines. */


static PyObject *TCP_STATE[13];
static PyObject *S_IPV4, *S_IPV6, *S_STREAM, *S_DGRAM, *S_RAWT, *S_ESTAB, *S_UNCONN, *S_RAW4, *S_RAW6;

typedef struct {
    const char *b;
    Py_ssize_t n;
} tok;

/* Whitespace-separated tokens of one line (bytes.split()), at most max; the count. */
static int split_line(const char *p, const char *e, tok *t, int max) {
    int k = 0;
    while (p < e && k < max) {
        while (p < e && is_ws(*p)) p++;
        if (p >= e) break;
        const char *s = p;
        while (p < e && !is_ws(*p)) p++;
        t[k].b = s;
        t[k].n = p - s;
        k++;
    }
    return k;
}

/* hex digits, upper or lower case (int(x, 16)); at most 16 */
static int hexany(const char *b, Py_ssize_t n, unsigned long long *v) {
    if (n <= 0 || n > 16) return -1;
    unsigned long long x = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = b[i];
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        x = x * 16 + d;
    }
    *v = x;
    return 0;
}

static int decnum(const char *b, Py_ssize_t n, long long *v) { return int_tok(b, n, v); }

/* "ADDR:PORT" of /proc/net/tcp*: the address as inet_ntop writes it, and the port. */
static int net_addr(const char *b, Py_ssize_t n, int v6, char *out, unsigned long long *port) {
    const char *colon = memchr(b, ':', n);
    if (!colon) return -1;
    Py_ssize_t al = colon - b, want = v6 ? 32 : 8;
    if (al != want) return -1;
    unsigned char raw[16], ord[16];
    for (Py_ssize_t i = 0; i < want / 2; i++) {
        unsigned long long x;
        if (hexany(b + 2 * i, 2, &x) < 0) return -1;
        raw[i] = (unsigned char)x;
    }
    if (v6) {
        for (int g = 0; g < 4; g++)
            for (int j = 0; j < 4; j++) ord[g * 4 + j] = raw[g * 4 + 3 - j];
    } else {
        for (int j = 0; j < 4; j++) ord[j] = raw[3 - j];
    }
    if (!inet_ntop(v6 ? AF_INET6 : AF_INET, ord, out, INET6_ADDRSTRLEN)) return -1;
    Py_ssize_t pl = n - al - 1;
    if (pl <= 0) return -1; /* int(b"", 16) raises */
    return hexany(colon + 1, pl, port);
}


/* The address strings of one table: a few distinct values (127.0.0.1, ::, the host's addresses)
   over tens of thousands of lines, so each distinct one is made once and shared, not a str per
   line. Up to ADDR_CACHE of them; others are made each time. */
#define ADDR_CACHE 16
typedef struct { char s[INET6_ADDRSTRLEN]; PyObject *o; } addr_entry;

static PyObject *addr_str(addr_entry *cache, int *used, const char *s) { /* new reference */
    for (int i = 0; i < *used; i++)
        if (strcmp(cache[i].s, s) == 0) {
            Py_INCREF(cache[i].o);
            return cache[i].o;
        }
    PyObject *o = PyUnicode_FromString(s);
    if (o && *used < ADDR_CACHE) {
        strcpy(cache[*used].s, s);
        cache[(*used)++].o = o;
        Py_INCREF(o);
    }
    return o;
}

/* One line of a /proc/net/{tcp,udp,raw}[6] table, as procfs.parse_inet reads it. */
typedef struct {
    tok f[12];
    int k;
    char la[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN];
    unsigned long long lp, rp, st, tx, rx;
    long long uid, inode;
} inet_line;

/* 1: parsed; 0: a line the Python parser skips. */
static int inet_parse_line(const char *p, const char *eol, int v6, inet_line *L) {
    tok *f = L->f;
    L->k = split_line(p, eol, f, 12);
    if (L->k < 10) return 0;
    if (net_addr(f[1].b, f[1].n, v6, L->la, &L->lp) < 0 || net_addr(f[2].b, f[2].n, v6, L->ra, &L->rp) < 0) return 0;
    if (hexany(f[3].b, f[3].n, &L->st) < 0) return 0;
    const char *c = memchr(f[4].b, ':', f[4].n);
    if (!c || hexany(f[4].b, c - f[4].b, &L->tx) < 0 || hexany(c + 1, f[4].b + f[4].n - c - 1, &L->rx) < 0) return 0;
    if (decnum(f[7].b, f[7].n, &L->uid) < 0 || decnum(f[9].b, f[9].n, &L->inode) < 0) return 0;
    return 1;
}

/* The state column: TCP's names (a number the kernel adds later as its digits), else whether the
   socket is connected. New reference. */
static PyObject *inet_state(int tcp, unsigned long long st) {
    PyObject *state;
    if (tcp && st >= 1 && st <= 12) state = TCP_STATE[st];
    else if (tcp) return PyUnicode_FromFormat("%llu", st);
    else state = st == 1 ? S_ESTAB : S_UNCONN;
    Py_INCREF(state);
    return state;
}


/* procfs._lsof_addr: "*" for the unspecified address, [v6], then :port. */
static int lsof_addr(char *buf, size_t size, const char *a, unsigned long long port, int v6) {
    if (strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0) return snprintf(buf, size, "*:%llu", port);
    return snprintf(buf, size, v6 ? "[%s]:%llu" : "%s:%llu", a, port);
}

/* inet_records(data, proto, v6, netns) -> [(resolution, socket_row)]: for each row parse_inet gives,
   what sockets._resolution and sockets._socket_row make of it (netns set), without the dict. */
static PyObject *inet_records(PyObject *self, PyObject *args) {
    const char *b;
    Py_ssize_t n;
    PyObject *proto, *ns;
    int v6;
    if (!PyArg_ParseTuple(args, "y#UpO", &b, &n, &proto, &v6, &ns)) return NULL;
    int tcp = PyUnicode_CompareWithASCIIString(proto, "TCP") == 0;
    int raw = PyUnicode_CompareWithASCIIString(proto, "RAW") == 0;
    PyObject *sock_type = tcp ? S_STREAM : raw ? S_RAWT : S_DGRAM;
    PyObject *fam = v6 ? S_IPV6 : S_IPV4;
    PyObject *typ = raw ? (v6 ? S_RAW6 : S_RAW4) : fam;
    addr_entry addrs[ADDR_CACHE];
    int n_addrs = 0;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    const char *p = memchr(b, '\n', n), *end = b + n;
    p = p ? p + 1 : end; /* the header line */
    while (p < end) {
        const char *eol = memchr(p, '\n', end - p);
        if (!eol) eol = end;
        inet_line L;
        int ok = inet_parse_line(p, eol, v6, &L);
        p = eol + 1;
        if (!ok) continue;
        PyObject *state = inet_state(tcp, L.st);
        if (!state) goto fail;
        char name[512];
        if (raw) {
            snprintf(name, sizeof name, "%.*s->%.*s st=%02llX", (int)L.f[1].n, L.f[1].b, (int)L.f[2].n, L.f[2].b, L.st);
        } else {
            int w = lsof_addr(name, sizeof name, L.la, L.lp, v6);
            if (L.rp || (strcmp(L.ra, "0.0.0.0") != 0 && strcmp(L.ra, "::") != 0)) {
                w += snprintf(name + w, sizeof name - w, "->");
                w += lsof_addr(name + w, sizeof name - w, L.ra, L.rp, v6);
            }
            if (tcp) {
                const char *sn = PyUnicode_AsUTF8(state);
                if (!sn) {
                    Py_DECREF(state);
                    goto fail;
                }
                snprintf(name + w, sizeof name - w, " (%s)", sn);
            }
        }
        PyObject *la = addr_str(addrs, &n_addrs, L.la), *ra = addr_str(addrs, &n_addrs, L.ra);
        PyObject *inode = PyLong_FromLongLong(L.inode);
        PyObject *device = raw ? (Py_INCREF(Py_None), Py_None) : PyUnicode_FromFormat("%lld", L.inode);
        PyObject *nm = PyUnicode_FromString(name);
        PyObject *rec = NULL;
        if (la && ra && inode && device && nm)
            rec = Py_BuildValue("((OOOOO)(OOOOOOKOKOKKLOO))", typ, device, proto, nm, Py_None,
                                inode, ns, fam, proto, sock_type, la, L.lp, ra, L.rp, state, L.rx, L.tx, L.uid,
                                Py_None, Py_None);
        Py_XDECREF(la);
        Py_XDECREF(ra);
        Py_XDECREF(inode);
        Py_XDECREF(device);
        Py_XDECREF(nm);
        Py_DECREF(state);
        if (!rec) goto fail;
        int e = PyList_Append(out, rec);
        Py_DECREF(rec);
        if (e < 0) goto fail;
    }
    for (int i = 0; i < n_addrs; i++) Py_DECREF(addrs[i].o);
    return out;
fail:
    for (int i = 0; i < n_addrs; i++) Py_DECREF(addrs[i].o);
    Py_DECREF(out);
    return NULL;
}



/* maps_rows(table, index, data, exe_key, sizes, map_files_dir) -> ids: the mem rows of one process
 * (data: its maps text), as the indexes (int32 values in native byte order) of their rows in table
 * (a Files), where a row not there yet is added: index maps (device, inode, path, size) to its
 * row's index. The rows: the first mapping of each file but the executable (exe_key, a (device,
 * inode) pair or None), "DEL" for a deleted one; a file's size from a stat of map_files/<range>
 * (None when the stat fails). sizes: a dict of this snapshot, (device, inode) -> size, so that
 * each file is stat'ed once. A library mapped by every process has one row in table. */
static PyObject *maps_rows(PyObject *self, PyObject *args) {
    PyObject *data, *exe, *sizes, *dir, *index;
    FilesObject *table;
    if (!PyArg_ParseTuple(args, "O!O!SOO!O&", &FilesType, &table, &PyDict_Type, &index, &data, &exe, &PyDict_Type,
                          &sizes, PyUnicode_FSConverter, &dir))
        return NULL;
    PyObject *dargs = PyTuple_Pack(1, data);
    PyObject *entries = dargs ? maps_distinct(self, dargs) : NULL;
    Py_XDECREF(dargs);
    gbuf ids = {NULL, 0, 0};
    int mfd = -2; /* map_files opened when a size is first needed; -1 when it could not be */
    if (!entries) goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(entries); i++) {
        PyObject *e = PyList_GET_ITEM(entries, i);
        PyObject *rng = PyTuple_GET_ITEM(e, 0), *dev = PyTuple_GET_ITEM(e, 1), *inode = PyTuple_GET_ITEM(e, 2);
        PyObject *path = PyTuple_GET_ITEM(e, 3);
        PyObject *key = PyTuple_Pack(2, dev, inode);
        if (!key) goto fail;
        int is_exe = exe != Py_None ? PyObject_RichCompareBool(key, exe, Py_EQ) : 0;
        if (is_exe) {
            Py_DECREF(key);
            if (is_exe < 0) goto fail;
            continue;
        }
        const char *b = PyBytes_AS_STRING(path);
        Py_ssize_t n = PyBytes_GET_SIZE(path);
        int deleted = n >= 10 && memcmp(b + n - 10, " (deleted)", 10) == 0;
        PyObject *size = Py_None; /* borrowed */
        if (!deleted) {
            size = PyDict_GetItemWithError(sizes, key);
            if (!size && PyErr_Occurred()) {
                Py_DECREF(key);
                goto fail;
            }
            if (!size) { /* not stat'ed yet in this snapshot */
                if (mfd == -2) mfd = open(PyBytes_AS_STRING(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                struct stat st;
                const char *rs = PyUnicode_AsUTF8(rng);
                PyObject *s = !rs ? NULL
                              : (mfd >= 0 && fstatat(mfd, rs, &st, 0) == 0) ? PyLong_FromLongLong((long long)st.st_size)
                                                                             : Py_NewRef(Py_None);
                if (!s || PyDict_SetItem(sizes, key, s) < 0) {
                    Py_XDECREF(s);
                    Py_DECREF(key);
                    goto fail;
                }
                Py_DECREF(s);
                size = s; /* the dict holds it */
            }
        }
        Py_DECREF(key);
        PyObject *rkey = PyTuple_Pack(4, dev, inode, path, size);
        if (!rkey) goto fail;
        PyObject *id = PyDict_GetItemWithError(index, rkey); /* borrowed */
        long long row;
        if (id) {
            row = PyLong_AsLongLong(id);
            if (row == -1 && PyErr_Occurred()) {
                Py_DECREF(rkey);
                goto fail;
            }
        } else {
            if (PyErr_Occurred()) {
                Py_DECREF(rkey);
                goto fail;
            }
            frow r = {.fd = svs(deleted ? "DEL" : "mem"), .type = svs("REG"), .has_inode = 1, .deleted = deleted};
            int ok = sv_of(dev, &r.device) == 0 && (r.inode = PyLong_AsLongLong(inode), !PyErr_Occurred()) &&
                     int_of(size, &r.size, &r.has_size) == 0;
            PyObject *keep = NULL;
            ok = ok && name_sv(b, deleted ? n - 10 : n, &r.name, &r.raw, &keep) == 0;
            ok = ok && files_row(table, &r) == 0;
            Py_XDECREF(keep);
            row = table->n - 1;
            PyObject *v = ok ? PyLong_FromLongLong(row) : NULL;
            if (!v || PyDict_SetItem(index, rkey, v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(rkey);
                goto fail;
            }
            Py_DECREF(v);
        }
        Py_DECREF(rkey);
        int32_t r32 = (int32_t)row;
        if (gbuf_put(&ids, &r32, 4) < 0) goto fail;
    }
    if (mfd >= 0) close(mfd);
    Py_DECREF(entries);
    Py_DECREF(dir);
    PyObject *out = PyBytes_FromStringAndSize(ids.p ? ids.p : "", ids.len);
    gbuf_free(&ids);
    return out;
fail:
    if (mfd >= 0) close(mfd);
    gbuf_free(&ids);
    Py_XDECREF(entries);
    Py_DECREF(dir);
    return NULL;
}



/* ------------------------------------------------------------------ a process's own files parsed
   The one parser of each per-process /proc format procsnap reads (stat, status, io, cgroup; a
   thread's stat and status): parse_stat, parse_status, parse_io and parse_cgroup take the bytes of
   a file; process() and thread_rows() read a process's files themselves and parse them with the
   same functions. Results are named (struct sequences); content that is not what the kernel
   writes raises ValueError. */

/* One piece of bytes.split(b"\n") after another, the last (maybe empty) one included: [*ls, *le)
   of the next line of [*p, end), 0 when there is none left. */
static int next_line(const char **p, const char *end, const char **ls, const char **le) {
    if (!*p) return 0;
    const char *nl = memchr(*p, '\n', end - *p);
    *ls = *p;
    *le = nl ? nl : end;
    *p = nl ? nl + 1 : NULL;
    return 1;
}

static void strip(const char **a, const char **z) {
    while (*a < *z && is_ws(**a)) (*a)++;
    while (*z > *a && is_ws((*z)[-1])) (*z)--;
}

static PyObject *malformed(const char *what) {
    PyErr_Format(PyExc_ValueError, "malformed %s", what);
    return NULL;
}

/* The named results. */
static PyTypeObject StatType, StatusType, IOType, ProcessType; /* ThreadType: above thread_rows */

static PyStructSequence_Field stat_fields[] = {
    {"pid", NULL}, {"comm", "the command name's bytes"}, {"state", NULL}, {"ppid", NULL}, {"pgid", NULL},
    {"sid", NULL}, {"tty_nr", NULL}, {"flags", NULL}, {"minflt", NULL}, {"majflt", NULL},
    {"utime", "clock ticks"}, {"stime", "clock ticks"}, {"priority", NULL}, {"nice", NULL},
    {"num_threads", NULL}, {"starttime", "clock ticks after boot"}, {"vsize", "bytes"},
    {"rss", "pages"}, {"processor", "None on kernels that do not give it"}, {NULL, NULL}};
static PyStructSequence_Desc stat_desc = {"recorder.source._native.Stat", "/proc/PID/stat", stat_fields, 19};

static PyStructSequence_Field status_fields[] = {
    {"ruid", NULL}, {"euid", NULL}, {"egid", NULL}, {"vm_rss", "bytes"}, {"rss_file", "bytes"},
    {"rss_shmem", "bytes"}, {"vm_swap", "bytes"}, {"ctxsw_voluntary", NULL}, {"ctxsw_involuntary", NULL},
    {NULL, NULL}};
static PyStructSequence_Desc status_desc = {"recorder.source._native.Status",
                                            "/proc/PID/status (None for a line it lacks)", status_fields, 9};

static PyStructSequence_Field io_fields[] = {
    {"rchar", NULL}, {"wchar", NULL}, {"syscr", NULL}, {"syscw", NULL}, {"read_bytes", NULL},
    {"write_bytes", NULL}, {"cancelled_write_bytes", NULL}, {NULL, NULL}};
static PyStructSequence_Desc io_desc = {"recorder.source._native.IO", "/proc/PID/io (None for a line it lacks)",
                                        io_fields, 7};

static PyStructSequence_Field process_fields[] = {
    {"stat", "Stat"}, {"status", "Status"}, {"exe", "the link's bytes; None for a kernel thread or a zombie"},
    {"cmdline", "bytes"}, {"io", "IO"}, {"cgroup", "what ps -o cgroup shows"},
    {"fd_names", "the fd folder's names when asked for, else None"}, {"num_fds", NULL},
    {"fd_limit", "RLIMIT_NOFILE soft through prlimit(2) (None: unlimited, or not asked)"},
    {"fd_limit_hard", "RLIMIT_NOFILE hard, likewise"},
    {"limits", "the limits file's bytes where prlimit was not asked for, else None"}, {NULL, NULL}};
static PyStructSequence_Desc process_desc = {"recorder.source._native.Process", "What process() reads of one process",
                                             process_fields, 11};

static PyStructSequence_Field thread_fields[] = {
    {"tid", NULL}, {"comm", "bytes"}, {"state", NULL}, {"priority", NULL}, {"nice", NULL},
    {"processor", NULL}, {"utime", "clock ticks"}, {"stime", "clock ticks"}, {"minflt", NULL},
    {"majflt", NULL}, {"starttime", "clock ticks after boot"}, {"ctxsw_voluntary", NULL},
    {"ctxsw_involuntary", NULL}, {NULL, NULL}};
static PyStructSequence_Desc thread_desc = {"recorder.source._native.Thread", "One thread of thread_rows()",
                                            thread_fields, 13};

/* Set field i of struct sequence s to o (a new reference; NULL: fail). */
#define SETF(s, i, expr)                   \
    do {                                   \
        PyObject *o_ = (expr);             \
        if (!o_) goto fail;                \
        PyStructSequence_SetItem(s, i, o_); \
    } while (0)

static PyObject *none(void) {
    Py_INCREF(Py_None);
    return Py_None;
}

static PyObject *ll_or_none(int has, long long v) { return has ? PyLong_FromLongLong(v) : none(); }

/* A Stat from a parsed stat file. */
static PyObject *stat_obj(const char *b, Py_ssize_t n, const statf *f) {
    long long pid = 0;
    const char *a = b, *z = memchr(b, '(', n);
    strip(&a, &z);
    int_tok(a, z - a, &pid); /* parse_stat checked it */
    PyObject *s = PyStructSequence_New(&StatType);
    if (!s) return NULL;
    SETF(s, 0, PyLong_FromLongLong(pid));
    SETF(s, 1, PyBytes_FromStringAndSize(f->comm, f->comm_len));
    SETF(s, 2, PyUnicode_DecodeASCII(f->state, f->state_len, "replace"));
    static const int idx[] = {1, 2, 3, 4, 6, 7, 9, 11, 12, 15, 16, 17, 19};
    for (int i = 0; i < 13; i++) SETF(s, 3 + i, PyLong_FromLongLong(f->v[idx[i]]));
    SETF(s, 16, PyLong_FromLongLong(f->nf > 20 ? f->v[20] : 0));
    SETF(s, 17, PyLong_FromLongLong(f->nf > 21 ? f->v[21] : 0));
    SETF(s, 18, ll_or_none(f->nf > 36, f->v[36]));
    return s;
fail:
    Py_DECREF(s);
    return NULL;
}

static PyObject *py_parse_stat(PyObject *self, PyObject *arg) {
    char *b;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &b, &n) < 0) return NULL;
    statf f;
    if (parse_stat(b, n, &f) < 0 || !f.state) return malformed("stat");
    return stat_obj(b, n, &f);
}

/* The values of /proc/PID/status procsnap keeps. */
static const char *STATUS_KEYS[] = {"Uid", "Gid", "VmRSS", "RssFile", "RssShmem", "VmSwap",
                                    "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"};
#define N_STATUS_KEYS 8

static int ids_of(const char *a, const char *z, long long *real, long long *eff) {
    const char *t[2], *e[2];
    int k = 0;
    const char *p = a;
    while (k < 2) {
        while (p < z && is_ws(*p)) p++;
        if (p >= z) return -1;
        t[k] = p;
        while (p < z && !is_ws(*p)) p++;
        e[k++] = p;
    }
    if (int_tok(t[0], e[0] - t[0], real) < 0 || int_tok(t[1], e[1] - t[1], eff) < 0) return -1;
    return (*real < 0 || *real > 2147483647LL || *eff < 0 || *eff > 2147483647LL) ? -1 : 0;
}

/* The nine values (ruid, euid, egid, VmRSS, RssFile, RssShmem, VmSwap in bytes, voluntary and
 * nonvoluntary context switches) into v (has[i] 0 for an absent line); -1 when the Uid: or Gid:
 * line is missing or a line is not what the kernel writes. */
static int status_parse(const char *b, Py_ssize_t n, long long v[9], int has[9]) {
    const char *va[N_STATUS_KEYS] = {0}, *vz[N_STATUS_KEYS] = {0};
    const char *p = b, *ls, *le;
    while (next_line(&p, b + n, &ls, &le)) {
        const char *colon = memchr(ls, ':', le - ls);
        if (colon)
            for (int k = 0; k < N_STATUS_KEYS; k++)
                if ((size_t)(colon - ls) == strlen(STATUS_KEYS[k]) && memcmp(ls, STATUS_KEYS[k], colon - ls) == 0) {
                    va[k] = colon + 1; /* the last line of a key wins */
                    vz[k] = le;
                    strip(&va[k], &vz[k]);
                    break;
                }
    }
    long long rgid;
    if (!va[0] || !va[1] || ids_of(va[0], vz[0], &v[0], &v[1]) < 0 || ids_of(va[1], vz[1], &rgid, &v[2]) < 0)
        return -1;
    has[0] = has[1] = has[2] = 1;
    for (int k = 2; k < N_STATUS_KEYS; k++) {
        int i = k + 1;
        has[i] = va[k] != NULL;
        if (!has[i]) continue;
        if (k < 6) { /* "123 kB": the first word, in KiB */
            const char *t = va[k], *e = t;
            while (e < vz[k] && !is_ws(*e)) e++;
            if (int_tok(t, e - t, &v[i]) < 0 || v[i] > 9223372036854775807LL / 1024 ||
                v[i] < (-9223372036854775807LL - 1) / 1024)
                return -1;
            v[i] *= 1024;
        } else if (int_tok(va[k], vz[k] - va[k], &v[i]) < 0)
            return -1;
    }
    return 0;
}

static PyObject *status_obj(const long long v[9], const int has[9]) {
    PyObject *s = PyStructSequence_New(&StatusType);
    if (!s) return NULL;
    for (int i = 0; i < 9; i++) SETF(s, i, ll_or_none(has[i], v[i]));
    return s;
fail:
    Py_DECREF(s);
    return NULL;
}

static PyObject *py_parse_status(PyObject *self, PyObject *arg) {
    char *b;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &b, &n) < 0) return NULL;
    long long v[9];
    int has[9];
    if (status_parse(b, n, v, has) < 0) return malformed("status");
    return status_obj(v, has);
}

/* A thread's status as thread_rows reads it: (voluntary, involuntary) context switches, None for
 * a line that is absent or not digits. */
static PyObject *py_status_ctxsw(PyObject *self, PyObject *arg) {
    char *b;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &b, &n) < 0) return NULL;
    long long vol = 0, invol = 0;
    int hv = status_num(b, n, "\nvoluntary_ctxt_switches:", &vol);
    int hi = status_num(b, n, "\nnonvoluntary_ctxt_switches:", &invol);
    if (hv < 0 || hi < 0) return malformed("status");
    PyObject *a = ll_or_none(hv, vol), *c = ll_or_none(hi, invol);
    if (!a || !c) {
        Py_XDECREF(a);
        Py_XDECREF(c);
        return NULL;
    }
    return Py_BuildValue("(NN)", a, c);
}

/* One "name: value" line [ls, le) of /proc/PID/io: 1 with its key [*ka, *kz) and value, 0 for a
 * line without a colon (skipped), -1 for a value that is not an int64. */
static int io_line(const char *ls, const char *le, const char **ka, const char **kz, long long *v) {
    const char *colon = memchr(ls, ':', le - ls);
    if (!colon) return 0;
    const char *va = colon + 1, *vz = le;
    *ka = ls;
    *kz = colon;
    strip(ka, kz);
    strip(&va, &vz);
    return int_tok(va, vz - va, v) < 0 ? -1 : 1;
}

static const char *IO_KEYS[] = {"rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes",
                                "cancelled_write_bytes"};
#define N_IO_KEYS 7

static int io_parse(const char *b, Py_ssize_t n, long long v[N_IO_KEYS], int has[N_IO_KEYS]) {
    memset(has, 0, sizeof(int) * N_IO_KEYS);
    const char *p = b, *ls, *le;
    while (next_line(&p, b + n, &ls, &le)) {
        const char *ka, *kz;
        long long x;
        int r = io_line(ls, le, &ka, &kz, &x);
        if (r < 0) return -1;
        if (!r) continue;
        for (int k = 0; k < N_IO_KEYS; k++)
            if ((size_t)(kz - ka) == strlen(IO_KEYS[k]) && memcmp(ka, IO_KEYS[k], kz - ka) == 0) {
                v[k] = x; /* the last line of a key wins */
                has[k] = 1;
                break;
            }
    }
    return 0;
}

static PyObject *io_obj(const long long v[N_IO_KEYS], const int has[N_IO_KEYS]) {
    PyObject *s = PyStructSequence_New(&IOType);
    if (!s) return NULL;
    for (int i = 0; i < N_IO_KEYS; i++) SETF(s, i, ll_or_none(has[i], v[i]));
    return s;
fail:
    Py_DECREF(s);
    return NULL;
}

static PyObject *py_parse_io(PyObject *self, PyObject *arg) {
    char *b;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &b, &n) < 0) return NULL;
    long long v[N_IO_KEYS];
    int has[N_IO_KEYS];
    if (io_parse(b, n, v, has) < 0) return malformed("io");
    return io_obj(v, has);
}

/* What ps -o cgroup shows: the lines with a path other than '/', joined by ','; '/' if none.
 * Bytes that are not UTF-8 become \xNN. */
static PyObject *cgroup_of(const char *b, Py_ssize_t n) {
    char small[512];
    char *out = n + 1 <= (Py_ssize_t)sizeof small ? small : PyMem_Malloc(n + 1);
    if (!out) return PyErr_NoMemory();
    Py_ssize_t on = 0;
    const char *p = b, *ls, *le;
    while (next_line(&p, b + n, &ls, &le)) {
        if (le > ls) {
            const char *c1 = memchr(ls, ':', le - ls), *c2 = c1 ? memchr(c1 + 1, ':', le - c1 - 1) : NULL;
            const char *path = c2 ? c2 + 1 : le;
            if (path < le && !(le - path == 1 && *path == '/')) {
                if (on) out[on++] = ',';
                memcpy(out + on, ls, le - ls);
                on += le - ls;
            }
        }
    }
    PyObject *r = on ? PyUnicode_DecodeUTF8(out, on, "backslashreplace") : PyUnicode_FromString("/");
    if (out != small) PyMem_Free(out);
    return r;
}

static PyObject *py_parse_cgroup(PyObject *self, PyObject *arg) {
    char *b;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &b, &n) < 0) return NULL;
    return cgroup_of(b, n);
}

/* process(folder, pid, names, prlimit, count_by_size) -> Process or None: what the processes
 * table takes of one process, read relative to /proc/PID (FOLDER) and parsed in one call.
 * NAMES: the fd folder's names go into fd_names (else only num_fds; COUNT_BY_SIZE: the size stat
 * gives the fd folder, where it is not 0, as ProcFS.fd_count). PRLIMIT: the descriptor limits
 * through prlimit(2); else the limits file's bytes. None as soon as anything is not ordinary (a
 * file gone, refused or malformed, a link that does not resolve): the caller then reads the
 * process file by file and decides what each error means. None for the calling process too, whose
 * descriptors this call would count among its own. */
static PyObject *process(PyObject *self, PyObject *args) {
    PyObject *dir;
    long long pid;
    int want_names, want_prlimit, count_by_size;
    if (!PyArg_ParseTuple(args, "O&Lppp", PyUnicode_FSConverter, &dir, &pid, &want_names, &want_prlimit,
                          &count_by_size))
        return NULL;
    if (pid == (long long)getpid()) {
        Py_DECREF(dir);
        Py_RETURN_NONE;
    }
    int dfd = open(PyBytes_AS_STRING(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    Py_DECREF(dir);
    if (dfd < 0) Py_RETURN_NONE;
    /* A 64 KiB buffer kept between calls, taken for the length of this one: a call made meanwhile
     * (a finalizer run by an allocation below, another thread let in by it) finds none and makes
     * its own, so no call ever sees another's buffer grown, freed or overwritten. */
    static char *spare = NULL;
    char *buf = spare;
    Py_ssize_t cap = 65536;
    spare = NULL;
    if (!buf && !(buf = PyMem_Malloc(cap))) {
        close(dfd);
        return PyErr_NoMemory();
    }
    PyObject *t = PyStructSequence_New(&ProcessType);
    if (!t) goto fail;
    for (Py_ssize_t i = 0; i < 11; i++) PyStructSequence_SetItem(t, i, none());
#define PUT(i, expr)                                \
    do {                                            \
        PyObject *o_ = (expr);                      \
        if (!o_) goto fail;                         \
        Py_SETREF(PyStructSequence_GET_ITEM(t, i), o_); \
    } while (0)
#define READ(name) \
    if ((n = read_at(dfd, name, &buf, &cap, 0)) < 0) goto odd_n
    Py_ssize_t n;
    READ("stat");
    statf f;
    if (parse_stat(buf, n, &f) < 0 || !f.state) goto odd;
    PUT(0, stat_obj(buf, n, &f));
    int no_exe = (f.v[6] & 0x00200000) /* PF_KTHREAD */ || (f.state_len == 1 && (f.state[0] == 'Z' || f.state[0] == 'X'));
    /* io next: of another user's process, what a collector that is not root is refused first
     * (io, exe and fd need ptrace access), before anything else is read in vain */
    READ("io");
    {
        long long v[N_IO_KEYS];
        int has[N_IO_KEYS];
        if (io_parse(buf, n, v, has) < 0) goto odd;
        PUT(4, io_obj(v, has));
    }
    READ("status");
    {
        long long v[9];
        int has[9];
        if (status_parse(buf, n, v, has) < 0) goto odd;
        PUT(1, status_obj(v, has));
    }
    if (!no_exe) {
        ssize_t k = readlinkat(dfd, "exe", buf, cap);
        if (k < 0 || k >= cap) goto odd;
        PUT(2, PyBytes_FromStringAndSize(buf, k));
    }
    READ("cmdline");
    PUT(3, PyBytes_FromStringAndSize(buf, n));
    READ("cgroup");
    PUT(5, cgroup_of(buf, n));
    {
        struct stat st;
        if (!want_names && count_by_size && fstatat(dfd, "fd", &st, 0) == 0 && st.st_size > 0) {
            PUT(7, PyLong_FromLongLong(st.st_size));
        } else {
            int ffd = openat(dfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (ffd < 0) goto odd;
            PyObject *names = dir_names(ffd);
            close(ffd);
            if (!names) {
                if (PyErr_ExceptionMatches(PyExc_OSError)) {
                    PyErr_Clear();
                    goto odd;
                }
                goto fail;
            }
            PyObject *count = PyLong_FromSsize_t(PyList_GET_SIZE(names));
            if (!count) {
                Py_DECREF(names);
                goto fail;
            }
            PUT(7, count);
            if (want_names)
                PUT(6, names);
            else
                Py_DECREF(names);
        }
    }
    if (want_prlimit) {
        struct rlimit r;
        if (prlimit((pid_t)pid, RLIMIT_NOFILE, NULL, &r) < 0) goto odd;
        rlim_t lv[2] = {r.rlim_cur, r.rlim_max};
        for (int i = 0; i < 2; i++)
            if (lv[i] != RLIM_INFINITY && lv[i] <= (rlim_t)9223372036854775807LL)
                PUT(8 + i, PyLong_FromLongLong((long long)lv[i]));
    } else {
        READ("limits");
        PUT(10, PyBytes_FromStringAndSize(buf, n));
    }
#undef PUT
#undef READ
    /* the buffer back for the next call; one a long file grew, or a second one, is freed */
#define DONE                              \
    close(dfd);                           \
    if (cap == 65536 && spare == NULL)    \
        spare = buf;                      \
    else                                  \
        PyMem_Free(buf);
    DONE
    return t;
odd_n:
    if (n == -ENOMEM) {
        PyErr_NoMemory();
        goto fail;
    }
odd:
    DONE
    Py_DECREF(t);
    PyErr_Clear();
    Py_RETURN_NONE;
fail:
    DONE
    Py_XDECREF(t);
    return NULL;
#undef DONE
}

static PyMethodDef methods[] = {
    {"fd_rows", fd_rows, METH_VARARGS, "A process's numbered descriptors' rows, added to a Files (see recorder/collect/descriptors.py)."},
    {"maps_distinct", maps_distinct, METH_VARARGS, "The first mapping of each file in a maps file."},
    {"proc_links", proc_links, METH_VARARGS, "A process's cwd, rtd and txt rows, added to a Files."},
    {"maps_rows", maps_rows, METH_VARARGS, "A process's mem rows from its maps file, added to a Files."},
    {"inet_records", inet_records, METH_VARARGS, "sockets.inet_records in C: (resolution, socket row) per socket."},
    {"read_files", read_files, METH_VARARGS, "Small files of one folder, each read whole (or its errno)."},
    {"thread_rows", thread_rows, METH_VARARGS, "The parsed stat and status of a process's threads."},
    {"taskstats", py_taskstats, METH_O, "A Taskstats of one task (thread id) over taskstats netlink; OSError if refused."},
    {"parse_taskstats", py_parse_taskstats, METH_O, "The Taskstats of a struct taskstats's bytes; None if too short or old."},
    {"taskstats_family", py_taskstats_family, METH_NOARGS, "The TASKSTATS generic netlink family id; OSError if refused."},
    {"parse_stat", py_parse_stat, METH_O, "A Stat of /proc/PID/stat's bytes; ValueError if malformed."},
    {"parse_status", py_parse_status, METH_O, "A Status of /proc/PID/status's bytes; ValueError if malformed."},
    {"status_ctxsw", py_status_ctxsw, METH_O, "(voluntary, involuntary) context switches of a thread's status."},
    {"parse_io", py_parse_io, METH_O, "An IO of /proc/PID/io's bytes; ValueError if malformed."},
    {"parse_cgroup", py_parse_cgroup, METH_O, "What ps -o cgroup shows of /proc/PID/cgroup's bytes."},
    {"process", process, METH_VARARGS, "A Process: what the processes table takes of one process, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods, NULL, NULL, NULL, NULL};

#define INTERN(var, s) \
    if (!(var = PyUnicode_InternFromString(s))) return NULL

PyMODINIT_FUNC PyInit__native(void) {
    INTERN(K_PIPE, " pipe");
    static const char *tcp_states[13] = {NULL, "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
                                         "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING",
                                         "NEW_SYN_RECV"};
    for (int i = 1; i < 13; i++) INTERN(TCP_STATE[i], tcp_states[i]);
    INTERN(S_IPV4, "IPv4");
    INTERN(S_IPV6, "IPv6");
    INTERN(S_STREAM, "STREAM");
    INTERN(S_DGRAM, "DGRAM");
    INTERN(S_RAWT, "RAW");
    INTERN(S_ESTAB, "ESTABLISHED");
    INTERN(S_UNCONN, "UNCONN");
    INTERN(S_RAW4, "raw");
    INTERN(S_RAW6, "raw6");
    if (PyStructSequence_InitType2(&StatType, &stat_desc) < 0 ||
        PyStructSequence_InitType2(&StatusType, &status_desc) < 0 ||
        PyStructSequence_InitType2(&IOType, &io_desc) < 0 ||
        PyStructSequence_InitType2(&ProcessType, &process_desc) < 0 ||
        PyStructSequence_InitType2(&ThreadType, &thread_desc) < 0 ||
        PyStructSequence_InitType2(&TaskstatsType, &taskstats_desc) < 0)
        return NULL;
    if (PyType_Ready(&FilesType) < 0 || PyType_Ready(&BufType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Files", (PyObject *)&FilesType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyTypeObject *types[] = {&StatType, &StatusType, &IOType, &ProcessType, &ThreadType, &TaskstatsType};
    const char *names[] = {"Stat", "Status", "IO", "Process", "Thread", "Taskstats"};
    for (int i = 0; i < 6; i++)
        if (PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
