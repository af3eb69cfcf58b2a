/*
 * ifwalk.h — the interface MIB side of a poll (agent/snmp/poller.c), shared by the poller's
 * files only: what is asked of IF-MIB, how the answers become interfaces, and the filters.
 *
 *  - The columns: ifTable (.1.3.6.1.2.1.2.2.1) and ifXTable (.1.3.6.1.2.1.31.1.1.1) columns
 *    the poller reads (C_* and X_*), the counters among them (a 64-bit column when the
 *    interface has it, else the 32-bit one) and the OID of a column's instance for the GETs
 *    between discoveries.
 *  - The walk (kvl_ifwalk_t): every column walked in parallel, one varbind per column per
 *    repetition. A column ends when it leaves its subtree, at endOfMibView, noSuchObject or
 *    noSuchInstance, when an OID does not increase, or (v1) on noSuchName. The poller sends
 *    what kvl_ifwalk_next writes and hands the answer to kvl_ifwalk_take.
 *  - Rows (kvl_ifrows_t): the values of one poll keyed by ifIndex, in index order; strings
 *    cleaned (snmp_text.h), ifPhysAddress as lowercase hex bytes joined by ':' (empty when
 *    the interface has none), numbers of any SNMP integer type, Counter64 remembered per
 *    column.
 *  - Names: ifName, else ifDescr, else "if<ifIndex>"; "#<ifIndex>" appended to each of a set
 *    of duplicates; filters (the device's `interfaces`) see the name before that suffix.
 *
 * Pure: no loop, no session, no batcher, no logging but the one warning kvl_ifwalk_take
 * gives for an OID that does not increase.
 */
#ifndef KVL_IFWALK_H
#define KVL_IFWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snmp_config.h"
#include "snmp_types.h"

/* The columns read, ifTable's then ifXTable's (bit numbers in row_t.present and friends). */
enum {
    C_DESCR,
    C_TYPE,
    C_SPEED,
    C_ADMIN,
    C_OPER,
    C_IN_OCT,
    C_IN_UCAST,
    C_IN_DISC,
    C_IN_ERR,
    C_OUT_OCT,
    C_OUT_UCAST,
    C_OUT_DISC,
    C_OUT_ERR,
    X_NAME,
    X_IN_MCAST,
    X_IN_BCAST,
    X_OUT_MCAST,
    X_OUT_BCAST,
    X_HC_IN_OCT,
    X_HC_IN_UCAST,
    X_HC_IN_MCAST,
    X_HC_IN_BCAST,
    X_HC_OUT_OCT,
    X_HC_OUT_UCAST,
    X_HC_OUT_MCAST,
    X_HC_OUT_BCAST,
    X_HIGH_SPEED,
    X_ALIAS,
    X_DISC_TIME,
    C_PHYS, /* ifPhysAddress, kept as "aa:bb:cc:dd:ee:ff" (read at discovery only) */
    N_COLS
};

/* The counters reported per interface: 64-bit column when the interface has it, else the
 * 32-bit one (-1: none). kvl_ifwalk_counters has N_CTR of them, in the order of the
 * interface family's first metrics. */
typedef struct counter_def {
    const char *metric;
    int hc;
    int lo;
    bool octets;
} counter_def_t;

#define N_CTR 12
extern const counter_def_t kvl_ifwalk_counters[N_CTR];

/* One interface as seen by the current poll. */
typedef struct row {
    uint32_t ifindex;
    uint32_t present; /* bit per column */
    uint32_t is64;    /* bit per column: the value was a Counter64 */
    uint64_t val[N_COLS];
    char *str[4]; /* ifDescr, ifName, ifAlias (cleaned), ifPhysAddress (hex, ':' between) */
    int64_t t_first, t_in32, t_in64;
} row_t;

/* The rows of one poll, in ifIndex order. */
typedef struct kvl_ifrows {
    row_t *v;
    size_t n, cap;
} kvl_ifrows_t;

/* Returns the row for ifindex, adding it in index order; NULL when out of memory. */
row_t *kvl_ifrows_find(kvl_ifrows_t *rows, uint32_t ifindex);
/* Empties the rows (their strings freed, the array kept). */
void kvl_ifrows_clear(kvl_ifrows_t *rows);
/* Empties the rows and frees the array. */
void kvl_ifrows_free(kvl_ifrows_t *rows);

/* Stores one value of column col for ifindex that arrived at time t (ms): strings must be
 * OCTET STRINGs, numbers any non-negative SNMP integer type; other values are ignored.
 * Returns false when out of memory. */
bool kvl_ifrows_store(kvl_ifrows_t *rows, int col, uint32_t ifindex, const kvl_snmp_vb_t *vb,
                      int64_t t);

/* Whether the row has a value in col (col < 0: no). */
bool kvl_ifrow_has(const row_t *r, int col);
/* The row's string in col, NULL when missing or empty. */
const char *kvl_ifrow_str(const row_t *r, int col);
/* Speed in bits/s, or false when the device gives none. */
bool kvl_ifrow_speed(const row_t *r, uint64_t *bps);
/* The column that counter m (kvl_ifwalk_counters) is read from in this row, or -1. */
int kvl_ifrow_counter_col(const row_t *r, size_t m);
/* The value columns of a row worth asking for between discoveries (bit per column). */
uint32_t kvl_ifrow_value_cols(const row_t *r);

/* A named row of a discovery. */
typedef struct named_row {
    row_t *r;
    char *name; /* unique: the archive name */
    char *base; /* ifName, else ifDescr, else if<ifIndex>: what filters see */
    bool included;
} named_row_t;

/* Names every row (ifName, else ifDescr, else "if<ifIndex>"; "#<ifIndex>" appended to each
 * of a set of duplicates). Returns an array of rows->n sorted by name, or NULL when out of
 * memory; free it with kvl_ifwalk_free_named. */
named_row_t *kvl_ifwalk_name_rows(kvl_ifrows_t *rows);
void kvl_ifwalk_free_named(named_row_t *nr, size_t n);

/* Whether the filters report this row (base: its name before any "#<ifIndex>"). */
bool kvl_ifwalk_included(const kvl_if_filter_t *f, const row_t *r, const char *base);

/* Writes the OID of column col's instance for ifindex (the GETs between discoveries). */
void kvl_ifwalk_instance_oid(kvl_snmp_oid_t *o, int col, uint32_t ifindex);

/* A walk of every column in parallel. */
typedef struct kvl_ifwalk {
    kvl_snmp_oid_t base[N_COLS]; /* each column's OID */
    kvl_snmp_oid_t cur[N_COLS];  /* each column's cursor */
    bool active[N_COLS];         /* the columns not finished */
    int req_cols[N_COLS];        /* the column of each varbind of the request */
    size_t n_req_cols;           /* varbinds of the request */
} kvl_ifwalk_t;

/* Starts a walk of every column from its beginning. */
void kvl_ifwalk_start(kvl_ifwalk_t *w);
/* Writes the next request (each active column's cursor, room for N_COLS) into req.
 * Returns the number of OIDs, 0 when every column has ended. */
size_t kvl_ifwalk_next(kvl_ifwalk_t *w, kvl_snmp_oid_t *req);
/* Ends the column of the request's varbind at index i (0-based), e.g. on a v1 noSuchName. */
void kvl_ifwalk_end_column(kvl_ifwalk_t *w, size_t i);

typedef enum {
    KVL_IFWALK_OK,      /* taken: ask again (kvl_ifwalk_next) */
    KVL_IFWALK_STALLED, /* no column moved although some are still active */
    KVL_IFWALK_NOMEM,   /* out of memory storing a value */
} kvl_ifwalk_status_t;

/* Takes the varbinds answering the last request (arrived at time t) into rows, moving the
 * cursors and ending the columns that ended. The first OID that does not increase on this
 * device (*nonincr_logged false) is logged as a warning for device dev. */
kvl_ifwalk_status_t kvl_ifwalk_take(kvl_ifwalk_t *w, kvl_ifrows_t *rows, const kvl_snmp_vb_t *vbs,
                                    size_t n_vbs, int64_t t, const char *dev, bool *nonincr_logged);

#endif
