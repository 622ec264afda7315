/* A small Parquet writer for one snapshot's tables (recorder/pqwrite.py is its Python side).

   Why it exists: a one-shot `procsnap snapshot` of a small host spent a third of its CPU outside
   the collection, most of it importing pyarrow and building Arrow tables only to write a few
   hundred KB. This writes the same files from the Python rows directly: one row group, per
   column one optional dictionary page and one data page (format v1), every column OPTIONAL (as
   pyarrow writes nullable fields), text and binary columns dictionary-encoded, the others PLAIN,
   definition levels RLE/bit-packed, pages compressed with zstd level 1 (Arrow's default level)
   through the system's libzstd, loaded with dlopen. Statistics (null count, min, max) only for the
   columns the caller names, as recorder/store.py's STATS_COLUMNS. No Arrow schema is stored: the
   Parquet types below are the ones pyarrow writes for the same Arrow types, so every reader
   (pyarrow, DuckDB) makes the same columns of either file. Compaction rewrites these files with
   pyarrow; the format reference is parquet-format's parquet.thrift (field ids below).

   write(columns, num_rows, created_by) -> bytes
     columns: sequence of (name: str, code: int, values, stats: bool, kind: int, key)
       code: 0 bool, 1 int32, 2 int64, 3 float64, 4 string, 5 binary, 6 timestamp (int64 µs, UTC),
             7 date (int32 days)
       kind 0: values is a list or tuple of num_rows values (None is null);
       kind 1: values is the one value of every row;
       kind 2: values is a list or tuple of num_rows dicts, the column's values are their key's
               (a missing key is a null).
   available() -> bool: whether libzstd could be loaded. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- zstd, loaded at first use */
typedef size_t (*zstd_compress_t)(void *, void *, size_t, const void *, size_t, int);
typedef void *(*zstd_create_t)(void);
typedef size_t (*zstd_bound_t)(size_t);
typedef unsigned (*zstd_iserror_t)(size_t);
static zstd_compress_t z_compress; /* ZSTD_compressCCtx: one context for every page (ZSTD_compress
                                      makes and frees one per call, most of the time of a small page) */
static zstd_bound_t z_bound;
static zstd_iserror_t z_iserror;
static void *z_ctx;
static int z_state; /* 0 not tried, 1 loaded, -1 unavailable */

static int zstd_load(void) {
    if (z_state)
        return z_state > 0;
    z_state = -1;
    void *h = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return 0;
    z_compress = (zstd_compress_t)dlsym(h, "ZSTD_compressCCtx");
    zstd_create_t create = (zstd_create_t)dlsym(h, "ZSTD_createCCtx");
    z_bound = (zstd_bound_t)dlsym(h, "ZSTD_compressBound");
    z_iserror = (zstd_iserror_t)dlsym(h, "ZSTD_isError");
    if (!z_compress || !create || !z_bound || !z_iserror || !(z_ctx = create()))
        return 0;
    z_state = 1;
    return 1;
}

/* ---------------------------------------------------------------- a growable byte buffer */
typedef struct {
    unsigned char *p;
    size_t n, cap;
    int oom;
} buf;

static int reserve(buf *b, size_t more) {
    if (b->oom)
        return -1;
    if (b->n + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more)
        cap *= 2;
    unsigned char *p = PyMem_Realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}
static void put(buf *b, const void *d, size_t n) {
    if (n && reserve(b, n) == 0) {
        memcpy(b->p + b->n, d, n);
        b->n += n;
    }
}
static void put8(buf *b, unsigned c) {
    if (reserve(b, 1) == 0)
        b->p[b->n++] = (unsigned char)c;
}
static void put_le32(buf *b, uint32_t v) {
    unsigned char d[4] = {v & 255, (v >> 8) & 255, (v >> 16) & 255, v >> 24};
    put(b, d, 4);
}
static void put_le64(buf *b, uint64_t v) {
    unsigned char d[8];
    for (int i = 0; i < 8; i++)
        d[i] = (v >> (8 * i)) & 255;
    put(b, d, 8);
}
static void varint(buf *b, uint64_t v) {
    while (v >= 0x80) {
        put8(b, (v & 0x7f) | 0x80);
        v >>= 7;
    }
    put8(b, v);
}
static void zigzag(buf *b, int64_t v) { varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }
static void freebuf(buf *b) {
    PyMem_Free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---------------------------------------------------------------- Thrift compact protocol */
enum { T_TRUE = 1, T_FALSE = 2, T_I16 = 4, T_I32 = 5, T_I64 = 6, T_BIN = 8, T_LIST = 9, T_STRUCT = 12 };
typedef struct {
    buf *b;
    int last[16]; /* the last field id of each open struct */
    int depth;
} tw;

static void t_field(tw *w, int id, int type) {
    int delta = id - w->last[w->depth];
    if (delta > 0 && delta <= 15)
        put8(w->b, (delta << 4) | type);
    else {
        put8(w->b, type);
        zigzag(w->b, id);
    }
    w->last[w->depth] = id;
}
static void t_open(tw *w) { w->last[++w->depth] = 0; } /* a struct's fields follow */
static void t_close(tw *w) {                           /* its stop byte */
    put8(w->b, 0);
    w->depth--;
}
static void t_struct(tw *w, int id) {
    t_field(w, id, T_STRUCT);
    t_open(w);
}
static void t_i32(tw *w, int id, int64_t v) {
    t_field(w, id, T_I32);
    zigzag(w->b, v);
}
static void t_i64(tw *w, int id, int64_t v) {
    t_field(w, id, T_I64);
    zigzag(w->b, v);
}
static void t_bin(tw *w, int id, const void *p, size_t n) {
    t_field(w, id, T_BIN);
    varint(w->b, n);
    put(w->b, p, n);
}
static void t_bool(tw *w, int id, int v) { t_field(w, id, v ? T_TRUE : T_FALSE); }
static void t_list(tw *w, int id, int elem, size_t size) {
    t_field(w, id, T_LIST);
    if (size < 15)
        put8(w->b, (size << 4) | elem);
    else {
        put8(w->b, 0xf0 | elem);
        varint(w->b, size);
    }
}

/* ---------------------------------------------------------------- RLE / bit-packed hybrid */
/* Values (each < 2^width, width 1..32) as runs: a value repeated 8 or more times is one RLE run,
   anything else goes in bit-packed groups of 8 (the last group padded with zeros). */
static void hybrid(buf *b, const uint32_t *v, size_t n, int width) {
    size_t i = 0;
    int vbytes = (width + 7) / 8;
    while (i < n) {
        size_t r = 1;
        while (i + r < n && v[i + r] == v[i])
            r++;
        if (r >= 8) {
            varint(b, (uint64_t)r << 1);
            for (int k = 0; k < vbytes; k++)
                put8(b, (v[i] >> (8 * k)) & 255);
            i += r;
            continue;
        }
        /* bit-packed groups until a run of 8 starts at a group boundary */
        size_t start = i, groups = 0;
        while (i < n) {
            size_t rr = 1;
            while (i + rr < n && v[i + rr] == v[i] && rr < 8)
                rr++;
            if (rr >= 8 && groups > 0)
                break;
            i += 8;
            groups++;
            if (groups == 63) /* keep the header one byte; nothing needs more */
                break;
        }
        if (i > n)
            i = n;
        varint(b, ((uint64_t)groups << 1) | 1);
        size_t total = groups * 8;
        uint64_t acc = 0;
        int bits = 0;
        for (size_t k = 0; k < total; k++) {
            uint64_t x = start + k < i ? v[start + k] : 0;
            acc |= x << bits;
            bits += width;
            while (bits >= 8) {
                put8(b, acc & 255);
                acc >>= 8;
                bits -= 8;
            }
        }
        if (bits > 0)
            put8(b, acc & 255);
    }
}

static int bit_width(uint32_t max) {
    int w = 1; /* at least 1: a width of 0 is valid Parquet, but not every reader takes it */
    while (w < 32 && (max >> w))
        w++;
    return w;
}

/* ---------------------------------------------------------------- a column's values */
enum { C_BOOL, C_INT32, C_INT64, C_DOUBLE, C_STRING, C_BINARY, C_TS, C_DATE };
static const int PHYS[] = {0 /*BOOLEAN*/, 1 /*INT32*/, 2 /*INT64*/, 5 /*DOUBLE*/, 6 /*BYTE_ARRAY*/,
                           6, 2, 1};

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    int code, stats;
    PyObject *seq;   /* list/tuple of values, or the rows of a ("key", rows, key) */
    PyObject *key;   /* the key of ("key", rows, key), else NULL */
    PyObject *konst; /* the value of ("const", value), else NULL */
} colspec;

/* Borrowed reference to row i's value (NULL with an error set when the rows are not dicts). */
static PyObject *value_at(const colspec *c, Py_ssize_t i) {
    if (c->konst)
        return c->konst;
    /* checked on every row: a value's __bool__ or __float__ may have shortened the list */
    if (i >= PySequence_Fast_GET_SIZE(c->seq)) {
        PyErr_Format(PyExc_RuntimeError, "column %s: the values changed while they were written", c->name);
        return NULL;
    }
    PyObject *v = PySequence_Fast_GET_ITEM(c->seq, i);
    if (c->key) {
        if (!PyDict_Check(v)) {
            PyErr_Format(PyExc_TypeError, "column %s: row %zd is not a dict", c->name, i);
            return NULL;
        }
        v = PyDict_GetItemWithError(v, c->key);
        if (!v && !PyErr_Occurred())
            v = Py_None;
    }
    return v;
}

/* The bytes of a string or binary value (a str for a binary column is taken as UTF-8). */
static int bytes_of(const colspec *c, PyObject *v, const char **p, Py_ssize_t *n) {
    if (PyUnicode_Check(v)) {
        *p = PyUnicode_AsUTF8AndSize(v, n);
        return *p ? 0 : -1;
    }
    if (c->code == C_BINARY && PyBytes_Check(v)) {
        *p = PyBytes_AS_STRING(v);
        *n = PyBytes_GET_SIZE(v);
        return 0;
    }
    if (c->code == C_BINARY && PyByteArray_Check(v)) {
        *p = PyByteArray_AS_STRING(v);
        *n = PyByteArray_GET_SIZE(v);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "column %s: expected %s, got %s", c->name, c->code == C_STRING ? "str" : "bytes",
                 Py_TYPE(v)->tp_name);
    return -1;
}

/* The dictionary of a text column: open addressing over (hash, bytes) -> index. */
typedef struct {
    const char *p;
    Py_ssize_t n;
    uint64_t h;
    uint32_t idx;
    int used;
} dslot;
typedef struct {
    dslot *slots;
    size_t cap, count;
    const char **vp; /* the values by index, for the dictionary page */
    Py_ssize_t *vn;
} dict_t;

static uint64_t hash_bytes(const char *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int dict_grow(dict_t *d) {
    size_t cap = d->cap ? d->cap * 2 : 64;
    dslot *s = PyMem_Calloc(cap, sizeof(dslot));
    const char **vp = PyMem_Realloc(d->vp, cap / 2 * sizeof(char *));
    if (vp)
        d->vp = vp;
    Py_ssize_t *vn = PyMem_Realloc(d->vn, cap / 2 * sizeof(Py_ssize_t));
    if (vn)
        d->vn = vn;
    if (!s || !vp || !vn) {
        PyMem_Free(s);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < d->cap; i++)
        if (d->slots[i].used) {
            size_t j = d->slots[i].h & (cap - 1);
            while (s[j].used)
                j = (j + 1) & (cap - 1);
            s[j] = d->slots[i];
        }
    PyMem_Free(d->slots);
    d->slots = s;
    d->cap = cap;
    return 0;
}

static long long dict_index(dict_t *d, const char *p, Py_ssize_t n) {
    if ((d->count + 1) * 2 > d->cap && dict_grow(d) < 0)
        return -1;
    uint64_t h = hash_bytes(p, n);
    size_t j = h & (d->cap - 1);
    while (d->slots[j].used) {
        dslot *s = &d->slots[j];
        if (s->h == h && s->n == n && memcmp(s->p, p, n) == 0)
            return s->idx;
        j = (j + 1) & (d->cap - 1);
    }
    dslot *s = &d->slots[j];
    s->used = 1;
    s->h = h;
    s->p = p;
    s->n = n;
    s->idx = (uint32_t)d->count;
    d->vp[d->count] = p;
    d->vn[d->count] = n;
    return d->count++;
}

static void dict_free(dict_t *d) {
    PyMem_Free(d->slots);
    PyMem_Free(d->vp);
    PyMem_Free(d->vn);
}

static int cmp_bytes(const char *a, Py_ssize_t an, const char *b, Py_ssize_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an < bn ? -1 : an > bn);
}

/* ---------------------------------------------------------------- pages */
typedef struct {
    int64_t dict_offset, data_offset, uncompressed, compressed;
    int has_dict;
    /* statistics */
    int64_t nulls;
    int has_minmax;
    buf min, max;
} chunk_meta;

/* Append one page (header + zstd body) to out; the sizes go into m. */
static int page(buf *out, int dict_page, const buf *body, int64_t num_values, int encoding, chunk_meta *m) {
    if (body->oom) { /* a body cut short by a failed allocation must not be written */
        PyErr_NoMemory();
        return -1;
    }
    size_t cap = z_bound(body->n);
    unsigned char *z = PyMem_Malloc(cap ? cap : 1);
    if (!z) {
        PyErr_NoMemory();
        return -1;
    }
    size_t zn = z_compress(z_ctx, z, cap, body->p ? body->p : (const unsigned char *)"", body->n, 1);
    if (z_iserror(zn)) {
        PyMem_Free(z);
        PyErr_SetString(PyExc_RuntimeError, "zstd compression failed");
        return -1;
    }
    if (body->n > INT32_MAX || zn > INT32_MAX) {
        PyMem_Free(z);
        PyErr_SetString(PyExc_OverflowError, "a Parquet page over 2 GiB");
        return -1;
    }
    buf h = {0};
    tw w = {&h, {0}, 0};
    t_i32(&w, 1, dict_page ? 2 : 0); /* PageType DICTIONARY_PAGE / DATA_PAGE */
    t_i32(&w, 2, (int64_t)body->n);
    t_i32(&w, 3, (int64_t)zn);
    if (dict_page) {
        t_struct(&w, 7); /* DictionaryPageHeader */
        t_i32(&w, 1, num_values);
        t_i32(&w, 2, 0); /* PLAIN */
        t_close(&w);
    } else {
        t_struct(&w, 5); /* DataPageHeader */
        t_i32(&w, 1, num_values);
        t_i32(&w, 2, encoding);
        t_i32(&w, 3, 3); /* definition levels: RLE */
        t_i32(&w, 4, 3); /* repetition levels: RLE (none here) */
        t_close(&w);
    }
    put8(&h, 0); /* end of PageHeader */
    int64_t at = (int64_t)out->n;
    if (dict_page) {
        m->dict_offset = at;
        m->has_dict = 1;
    } else
        m->data_offset = at;
    m->uncompressed += (int64_t)(h.n + body->n);
    m->compressed += (int64_t)(h.n + zn);
    put(out, h.p, h.n);
    put(out, z, zn);
    freebuf(&h);
    PyMem_Free(z);
    if (h.oom || out->oom) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* One column chunk: its pages appended to out, its metadata in m. */
static int column(buf *out, const colspec *c, Py_ssize_t n, chunk_meta *m) {
    int rc = -1;
    unsigned char *defined = PyMem_Malloc(n ? n : 1);
    uint32_t *idx = NULL;
    dict_t d = {0};
    buf vals = {0}, body = {0}, dpage = {0};
    if (!defined) {
        PyErr_NoMemory();
        return -1;
    }
    int text = c->code == C_STRING || c->code == C_BINARY;
    if (text && !(idx = PyMem_Malloc(sizeof(uint32_t) * (n ? n : 1)))) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t imin = 0, imax = 0;
    const char *smin = NULL, *smax = NULL;
    Py_ssize_t sminn = 0, smaxn = 0;
    Py_ssize_t nidx = 0;
    int seen = 0;
    unsigned char bits = 0;
    int nbits = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = value_at(c, i);
        if (!v)
            goto done;
        if (v == Py_None) {
            defined[i] = 0;
            m->nulls++;
            continue;
        }
        defined[i] = 1;
        switch (c->code) {
        case C_BOOL: {
            int t = PyObject_IsTrue(v);
            if (t < 0)
                goto done;
            bits |= (unsigned char)(t << nbits);
            if (++nbits == 8) {
                put8(&vals, bits);
                bits = 0;
                nbits = 0;
            }
            break;
        }
        case C_INT32:
        case C_DATE:
        case C_INT64:
        case C_TS: {
            if (!PyLong_Check(v)) {
                PyErr_Format(PyExc_TypeError, "column %s: expected int, got %s", c->name, Py_TYPE(v)->tp_name);
                goto done;
            }
            long long x = PyLong_AsLongLong(v);
            if (x == -1 && PyErr_Occurred())
                goto done;
            if ((c->code == C_INT32 || c->code == C_DATE) && (x < INT32_MIN || x > INT32_MAX)) {
                PyErr_Format(PyExc_OverflowError, "column %s: %lld does not fit in int32", c->name, x);
                goto done;
            }
            if (c->code == C_INT32 || c->code == C_DATE)
                put_le32(&vals, (uint32_t)(int32_t)x);
            else
                put_le64(&vals, (uint64_t)x);
            if (!seen || x < imin)
                imin = x;
            if (!seen || x > imax)
                imax = x;
            break;
        }
        case C_DOUBLE: {
            double x = PyFloat_AsDouble(v);
            if (x == -1.0 && PyErr_Occurred())
                goto done;
            uint64_t u;
            memcpy(&u, &x, 8);
            put_le64(&vals, u);
            break;
        }
        default: {
            const char *p;
            Py_ssize_t len;
            if (bytes_of(c, v, &p, &len) < 0)
                goto done;
            long long k = dict_index(&d, p, len);
            if (k < 0)
                goto done;
            idx[nidx++] = (uint32_t)k;
            if (!seen || cmp_bytes(p, len, smin, sminn) < 0) {
                smin = p;
                sminn = len;
            }
            if (!seen || cmp_bytes(p, len, smax, smaxn) > 0) {
                smax = p;
                smaxn = len;
            }
        }
        }
        seen = 1;
    }
    if (c->code == C_BOOL && nbits)
        put8(&vals, bits);
    if (vals.oom) {
        PyErr_NoMemory();
        goto done;
    }
    if (c->stats && seen && c->code != C_BOOL && c->code != C_DOUBLE) {
        m->has_minmax = 1;
        if (text) {
            put(&m->min, smin, sminn);
            put(&m->max, smax, smaxn);
        } else if (c->code == C_INT32 || c->code == C_DATE) {
            put_le32(&m->min, (uint32_t)(int32_t)imin);
            put_le32(&m->max, (uint32_t)(int32_t)imax);
        } else {
            put_le64(&m->min, (uint64_t)imin);
            put_le64(&m->max, (uint64_t)imax);
        }
        if (m->min.oom || m->max.oom) { /* cut-short statistics would make readers skip rows */
            PyErr_NoMemory();
            goto done;
        }
    }
    /* the dictionary page: each distinct value, PLAIN (4-byte length, bytes) */
    if (text) {
        for (size_t k = 0; k < d.count; k++) {
            put_le32(&dpage, (uint32_t)d.vn[k]);
            put(&dpage, d.vp[k], d.vn[k]);
        }
        if (page(out, 1, &dpage, (int64_t)d.count, 0, m) < 0)
            goto done;
    }
    /* the data page: definition levels (4-byte length, then the hybrid runs), then the values */
    {
        uint32_t *lv = PyMem_Malloc(sizeof(uint32_t) * (n ? n : 1));
        if (!lv) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < n; i++)
            lv[i] = defined[i];
        buf lev = {0};
        hybrid(&lev, lv, n, 1);
        PyMem_Free(lv);
        if (lev.oom) {
            freebuf(&lev);
            PyErr_NoMemory();
            goto done;
        }
        put_le32(&body, (uint32_t)lev.n);
        put(&body, lev.p, lev.n);
        freebuf(&lev);
    }
    if (text) {
        int width = bit_width(d.count ? (uint32_t)(d.count - 1) : 0);
        put8(&body, width);
        hybrid(&body, idx, nidx, width);
    } else
        put(&body, vals.p, vals.n);
    if (body.oom) {
        PyErr_NoMemory();
        goto done;
    }
    if (page(out, 0, &body, n, text ? 8 /* RLE_DICTIONARY */ : 0 /* PLAIN */, m) < 0)
        goto done;
    rc = 0;
done:
    PyMem_Free(defined);
    PyMem_Free(idx);
    dict_free(&d);
    freebuf(&vals);
    freebuf(&body);
    freebuf(&dpage);
    return rc;
}

/* ---------------------------------------------------------------- the footer */
/* A SchemaElement's converted_type and its LogicalType union set to MEMBER: an empty struct
   (STRING, DATE), or for TIMESTAMP a TimestampType(isAdjustedToUTC = true, unit = MICROS). */
static void logical(tw *w, int converted, int member) {
    t_i32(w, 6, converted);
    t_struct(w, 10);
    t_struct(w, member);
    if (member == 8) {
        t_bool(w, 1, 1); /* isAdjustedToUTC */
        t_struct(w, 2);  /* unit: TimeUnit */
        t_struct(w, 2);  /* MICROS */
        t_close(w);
        t_close(w);
    }
    t_close(w);
    t_close(w);
}

static void schema_element(tw *w, const colspec *c) {
    t_open(w);
    t_i32(w, 1, PHYS[c->code]);
    t_i32(w, 3, 1); /* OPTIONAL */
    t_bin(w, 4, c->name, c->name_len);
    switch (c->code) {
    case C_STRING:
        logical(w, 0, 1); /* UTF8; STRING */
        break;
    case C_DATE:
        logical(w, 6, 6); /* DATE; DATE */
        break;
    case C_TS:
        logical(w, 10, 8); /* TIMESTAMP_MICROS; TIMESTAMP */
        break;
    }
    t_close(w);
}

static void column_chunk(tw *w, const colspec *c, Py_ssize_t n, const chunk_meta *m) {
    t_open(w);
    int64_t first = m->has_dict ? m->dict_offset : m->data_offset;
    t_i64(w, 2, first); /* file_offset */
    t_struct(w, 3);     /* ColumnMetaData */
    t_i32(w, 1, PHYS[c->code]);
    int text = c->code == C_STRING || c->code == C_BINARY;
    t_list(w, 2, T_I32, text ? 3 : 2); /* encodings */
    zigzag(w->b, 0);                   /* PLAIN */
    zigzag(w->b, 3);                   /* RLE */
    if (text)
        zigzag(w->b, 8); /* RLE_DICTIONARY */
    t_list(w, 3, T_BIN, 1); /* path_in_schema */
    varint(w->b, c->name_len);
    put(w->b, c->name, c->name_len);
    t_i32(w, 4, 6); /* ZSTD */
    t_i64(w, 5, n);
    t_i64(w, 6, m->uncompressed);
    t_i64(w, 7, m->compressed);
    t_i64(w, 9, m->data_offset);
    if (m->has_dict)
        t_i64(w, 11, m->dict_offset);
    if (c->stats) {
        t_struct(w, 12); /* Statistics */
        t_i64(w, 3, m->nulls);
        if (m->has_minmax) {
            t_bin(w, 5, m->max.p, m->max.n);
            t_bin(w, 6, m->min.p, m->min.n);
        }
        t_close(w);
    }
    t_close(w); /* ColumnMetaData */
    t_close(w); /* ColumnChunk */
}

static int parse_spec(PyObject *item, colspec *c) {
    PyObject *name, *values, *key;
    int code, stats, how;
    if (!PyArg_ParseTuple(item, "UiOpiO", &name, &code, &values, &stats, &how, &key))
        return -1;
    if (code < C_BOOL || code > C_DATE) {
        PyErr_Format(PyExc_ValueError, "unknown column type code %d", code);
        return -1;
    }
    c->name = PyUnicode_AsUTF8AndSize(name, &c->name_len);
    if (!c->name)
        return -1;
    c->code = code;
    c->stats = stats;
    c->seq = c->key = c->konst = NULL;
    if (how == 1) { /* the same value on every row */
        c->konst = values;
        return 0;
    }
    if (!PyList_Check(values) && !PyTuple_Check(values)) {
        PyErr_Format(PyExc_TypeError, "column %s: values must be a list or tuple", c->name);
        return -1;
    }
    c->seq = values;
    if (how == 2) /* values are rows (dicts), the column is their key */
        c->key = key;
    else if (how != 0) {
        PyErr_Format(PyExc_ValueError, "column %s: unknown value kind %d", c->name, how);
        return -1;
    }
    return 0;
}

static PyObject *pq_write(PyObject *self, PyObject *args) {
    PyObject *spec;
    Py_ssize_t n;
    const char *created_by;
    Py_ssize_t created_len;
    if (!PyArg_ParseTuple(args, "Ons#", &spec, &n, &created_by, &created_len))
        return NULL;
    if (!zstd_load()) {
        PyErr_SetString(PyExc_RuntimeError, "libzstd.so.1 could not be loaded");
        return NULL;
    }
    if (n < 0 || n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "num_rows out of range");
        return NULL;
    }
    PyObject *fast = PySequence_Fast(spec, "columns must be a sequence");
    if (!fast)
        return NULL;
    Py_ssize_t ncols = PySequence_Fast_GET_SIZE(fast);
    colspec *cols = PyMem_Calloc(ncols ? ncols : 1, sizeof(colspec));
    chunk_meta *metas = PyMem_Calloc(ncols ? ncols : 1, sizeof(chunk_meta));
    buf out = {0}, foot = {0};
    PyObject *result = NULL;
    if (!cols || !metas) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < ncols; k++) {
        if (parse_spec(PySequence_Fast_GET_ITEM(fast, k), &cols[k]) < 0)
            goto done;
        if (cols[k].seq && PySequence_Fast_GET_SIZE(cols[k].seq) != n) {
            PyErr_Format(PyExc_ValueError, "column %s has %zd values, not %zd", cols[k].name,
                         PySequence_Fast_GET_SIZE(cols[k].seq), n);
            goto done;
        }
    }
    put(&out, "PAR1", 4);
    for (Py_ssize_t k = 0; k < ncols && n > 0; k++)
        if (column(&out, &cols[k], n, &metas[k]) < 0)
            goto done;
    {
        tw w = {&foot, {0}, 0};
        int64_t total_u = 0, total_c = 0;
        for (Py_ssize_t k = 0; k < ncols; k++) {
            total_u += metas[k].uncompressed;
            total_c += metas[k].compressed;
        }
        t_i32(&w, 1, 2); /* version */
        t_list(&w, 2, T_STRUCT, (size_t)ncols + 1);
        t_open(&w); /* the root */
        t_bin(&w, 4, "schema", 6);
        t_i32(&w, 5, ncols);
        t_close(&w);
        for (Py_ssize_t k = 0; k < ncols; k++)
            schema_element(&w, &cols[k]);
        t_i64(&w, 3, n);
        t_list(&w, 4, T_STRUCT, n > 0); /* one row group; none when there are no rows */
        if (n > 0) {
            t_open(&w);
            t_list(&w, 1, T_STRUCT, (size_t)ncols);
            for (Py_ssize_t k = 0; k < ncols; k++)
                column_chunk(&w, &cols[k], n, &metas[k]);
            t_i64(&w, 2, total_u);
            t_i64(&w, 3, n);
            t_i64(&w, 5, 4); /* file_offset: the first page */
            t_i64(&w, 6, total_c);
            t_field(&w, 7, T_I16);
            zigzag(&foot, 0); /* ordinal */
            t_close(&w);
        }
        t_bin(&w, 6, created_by, created_len);
        t_list(&w, 7, T_STRUCT, (size_t)ncols); /* column_orders: TYPE_ORDER for each */
        for (Py_ssize_t k = 0; k < ncols; k++) {
            t_open(&w);
            t_struct(&w, 1);
            t_close(&w);
            t_close(&w);
        }
        put8(&foot, 0); /* end of FileMetaData */
    }
    put(&out, foot.p, foot.n);
    put_le32(&out, (uint32_t)foot.n);
    put(&out, "PAR1", 4);
    if (out.oom || foot.oom) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize((const char *)out.p, (Py_ssize_t)out.n);
done:
    if (metas)
        for (Py_ssize_t k = 0; k < ncols; k++) {
            freebuf(&metas[k].min);
            freebuf(&metas[k].max);
        }
    PyMem_Free(cols);
    PyMem_Free(metas);
    freebuf(&out);
    freebuf(&foot);
    Py_DECREF(fast);
    return result;
}

static PyObject *available(PyObject *self, PyObject *noargs) { return PyBool_FromLong(zstd_load()); }

static PyMethodDef methods[] = {
    {"write", pq_write, METH_VARARGS, "write(columns, num_rows, created_by) -> bytes of a Parquet file"},
    {"available", available, METH_NOARGS, "whether libzstd could be loaded"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pqwrite", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__pqwrite(void) { return PyModule_Create(&module); }
