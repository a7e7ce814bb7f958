/* SPDX-License-Identifier: MIT */
#ifndef PIPECONN_VALUE_H
#define PIPECONN_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "serializer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */
/*
 * A pc_value is one of the objects Python programs send each other: None,
 * bool, int (any size), float, str, bytes, list, tuple, dict, set and
 * frozenset. It is opaque; use the functions below.
 *
 * Ownership (as jansson's json_t). Values are reference-counted.
 *  - A constructor returns a NEW reference: the caller owns it and releases
 *    it with pc_value_free().
 *  - A getter (pc_value_item, pc_value_dict_get, ...) returns a BORROWED
 *    reference: valid while the container holds it; take your own with
 *    pc_value_ref() to keep it longer.
 *  - Inserting into a container comes in two forms: the plain form BORROWS
 *    the item (the container takes its own reference, the caller keeps
 *    theirs), the _steal form takes over the caller's reference, also when
 *    it fails (so pc_value_list_append_steal(l, pc_value_int(1)) never
 *    leaks).
 *  - None, True, False, the empty str, the empty bytes and the empty tuple
 *    are immortal singletons, and small ints are stored in the pointer itself
 *    (no allocation): pc_value_ref/pc_value_free on them do nothing, which
 *    keeps a list of ints a single allocation. Never compare values by
 *    pointer; use pc_value_equal().
 *
 * Thread safety. Reference counts are atomic, so a value may be read and
 * referenced/released from several threads at once. Mutating a container
 * (append, set, add, del) while another thread reads it needs the caller's
 * lock, as with any C data structure.
 *
 * Cycles. Reference counting cannot free cycles, and every recursive
 * operation (repr, equality, hashing, pickling) stops at PC_VALUE_MAX_DEPTH.
 * Appending a container to itself is refused (-EINVAL); longer cycles built
 * by hand are the caller's mistake (they leak, and recursive operations fail
 * with PC_ELIMIT instead of looping). The pickle decoder never builds one.
 *
 * Depth. Containers may nest PC_VALUE_MAX_DEPTH levels deep (a scalar has
 * depth 0, a list of scalars depth 1). pc_value_equal, pc_value_repr, hashing
 * and pickling report PC_ELIMIT (or NULL) beyond it instead of exhausting the
 * stack; they use at most a few hundred bytes of stack per level. Releasing a
 * value never recurses, whatever its depth. Work is bounded too: a value
 * that shares one container many times (a few bytes of pickle can describe
 * 2^60 nodes through the memo) makes hashing and pc_value_equal report
 * PC_ELIMIT after about four million node visits instead of walking it.
 *
 * Python equivalents: the Python type of each value is what pc_type_name()
 * returns; where a function has a Python equivalent, its comment names it.
 */
typedef struct pc_value pc_value;

/* Deepest nesting of containers that recursive operations accept. */
#define PC_VALUE_MAX_DEPTH 1000

/* The type of a value. */
typedef enum pc_type {
  PC_TYPE_NONE,
  PC_TYPE_BOOL,
  PC_TYPE_INT,
  PC_TYPE_FLOAT,
  PC_TYPE_STR,
  PC_TYPE_BYTES,
  PC_TYPE_LIST,
  PC_TYPE_TUPLE,
  PC_TYPE_DICT,
  PC_TYPE_SET,
  PC_TYPE_FROZENSET
} pc_type;

/* pc_value_type returns the type of v (not NULL). Python: type(v). */
PC_API pc_type pc_value_type(const pc_value *v);

/* pc_type_name returns Python's name of a type: "NoneType", "bool", "int",
 * "float", "str", "bytes", "list", "tuple", "dict", "set", "frozenset"; or
 * "?" for a value outside the enum. Static string, never NULL. */
PC_API const char *pc_type_name(pc_type t);

/* ---------------------------------------------------------- references */

/* pc_value_ref takes a new reference to v and returns v (NULL gives NULL).
 * Thread-safe (atomic). */
PC_API pc_value *pc_value_ref(pc_value *v);

/* pc_value_free releases one reference to v; the last one frees it and
 * releases what it contains. NULL is accepted. Never recurses, whatever the
 * nesting depth. Thread-safe (atomic). */
PC_API void pc_value_free(pc_value *v);

/* ---------------------------------------------------------- scalars
 * Constructors return a new reference, or NULL with errno set: ENOMEM, or
 * EINVAL for invalid arguments (invalid UTF-8, NULL pointer). */

/* pc_value_none returns None (an immortal singleton). */
PC_API pc_value *pc_value_none(void);

/* pc_value_bool returns True or False (immortal singletons). */
PC_API pc_value *pc_value_bool(bool b);

/* pc_value_int returns an int. Ints in [-2^62, 2^62) (on 64-bit machines)
 * never allocate. */
PC_API pc_value *pc_value_int(int64_t i);

/* pc_value_uint returns an int from an unsigned 64-bit number. */
PC_API pc_value *pc_value_uint(uint64_t u);

/* pc_value_int_from_bytes returns the int whose two's-complement (is_signed)
 * or unsigned little-endian representation is bytes[0..len); len 0 is 0.
 * Any size. Python: int.from_bytes(bytes, 'little', signed=is_signed). */
PC_API pc_value *pc_value_int_from_bytes(const void *bytes, size_t len,
                                         bool is_signed);

/* pc_value_int_parse returns the int written in decimal in text[0..len):
 * optional surrounding ASCII whitespace, an optional sign, then digits with
 * optional single underscores between them. At most 4300 digits (Python's
 * int_max_str_digits); beyond that, or on any other text, NULL with errno
 * EINVAL. Python: int(text). */
PC_API pc_value *pc_value_int_parse(const char *text, size_t len);

/* pc_value_float returns a float holding d bit for bit (NaN payloads, -0.0
 * and infinities included). */
PC_API pc_value *pc_value_float(double d);

/* pc_value_str returns a str from the NUL-terminated UTF-8 text s.
 * pc_value_strn takes s[0..len), which may contain NUL characters.
 * The text must be valid UTF-8 (shortest forms, code points up to
 * U+10FFFF); encoded surrogates (U+D800..U+DFFF) are accepted, as Python's
 * pickle carries them ("surrogatepass"), so that every Python str can be
 * represented. Otherwise NULL with errno EINVAL. The text is copied. */
PC_API pc_value *pc_value_str(const char *s);
PC_API pc_value *pc_value_strn(const char *s, size_t len);

/* pc_value_bytes returns a bytes object copied from p[0..len) (p may be
 * NULL when len is 0). */
PC_API pc_value *pc_value_bytes(const void *p, size_t len);

/* ---------------------------------------------------------- scalar access
 * Accessors never allocate and never change v. -EINVAL means v has another
 * type (or is NULL); outputs are written only on success. */

/* pc_value_get_bool stores a bool's value. Returns 0 or -EINVAL. */
PC_API int pc_value_get_bool(const pc_value *v, bool *out);

/* pc_value_get_int stores an int's value (bool counts as 0/1, as in Python).
 * Returns 0, -EINVAL (not an int or bool), or -ERANGE (outside int64_t;
 * use pc_value_int_to_bytes). */
PC_API int pc_value_get_int(const pc_value *v, int64_t *out);

/* pc_value_get_float stores a float's value, bit for bit. Ints are not
 * converted (-EINVAL), as a C caller usually wants to know. */
PC_API int pc_value_get_float(const pc_value *v, double *out);

/* pc_value_int_to_bytes writes the shortest two's-complement little-endian
 * representation of the int (or bool) v into buf when it fits in cap bytes,
 * and returns its length (at least 1) either way, like snprintf: call with
 * cap 0 to learn the size. Returns -EINVAL if v is not an int. Python:
 * v.to_bytes(n, 'little', signed=True) with the smallest n. */
PC_API ssize_t pc_value_int_to_bytes(const pc_value *v, void *buf, size_t cap);

/* pc_value_str_data returns the UTF-8 text of a str (borrowed, valid while v
 * lives, NUL-terminated after len bytes, and may contain NUL itself) and its
 * length in bytes in *len (len may be NULL); NULL if v is not a str. */
PC_API const char *pc_value_str_data(const pc_value *v, size_t *len);

/* pc_value_bytes_data returns the contents of a bytes object (borrowed,
 * followed by a NUL byte for convenience) and its length in *len (may be
 * NULL); NULL if v is not bytes. */
PC_API const void *pc_value_bytes_data(const pc_value *v, size_t *len);

/* ---------------------------------------------------------- containers */

/* pc_value_list returns a new empty list. Python: []. */
PC_API pc_value *pc_value_list(void);

/* pc_value_tuple returns a tuple of items[0..n) (borrowed: the tuple takes
 * its own references; items may be NULL when n is 0). NULL with errno
 * EINVAL if an item is NULL. Python: tuple(items). */
PC_API pc_value *pc_value_tuple(size_t n, pc_value *const *items);

/* pc_value_tuple_pack returns a tuple of the n values that follow
 * (borrowed, all `pc_value *`). Python: (a, b, ...). */
PC_API pc_value *pc_value_tuple_pack(size_t n, ...);

/* pc_value_dict returns a new empty dict. Python: {}. */
PC_API pc_value *pc_value_dict(void);

/* pc_value_set / pc_value_frozenset return a new empty set / frozenset.
 * Python: set(), frozenset(). A frozenset is filled with pc_value_set_add
 * while you build it; do not add to it once it is used as a dict key or
 * set element (its hash would change). */
PC_API pc_value *pc_value_set(void);
PC_API pc_value *pc_value_frozenset(void);

/* pc_value_len returns Python's len(v): the number of items of a list,
 * tuple, dict, set or frozenset, of bytes of a bytes object, of code points
 * of a str (counted, O(n)); 0 for None, bool, int and float. */
PC_API size_t pc_value_len(const pc_value *v);

/* pc_value_item returns item i (borrowed) of a list or tuple; the i-th
 * element, in arrival order, of a set or frozenset; the i-th key, in
 * insertion order, of a dict. NULL if v is none of those or i >= len. */
PC_API pc_value *pc_value_item(const pc_value *v, size_t i);

/* pc_value_list_append appends item to list (borrowed). Python:
 * list.append(item). Returns 0, -EINVAL (not a list, item NULL, or item is
 * the list itself), -ENOMEM. */
PC_API int pc_value_list_append(pc_value *list, pc_value *item);

/* pc_value_list_append_steal is pc_value_list_append taking over the
 * caller's reference to item, also on failure. */
PC_API int pc_value_list_append_steal(pc_value *list, pc_value *item);

/* pc_value_list_set replaces item i (borrowed), releasing the old one.
 * Python: list[i] = item. Returns 0, -EINVAL (not a list, NULL item, the
 * list itself), -ERANGE (i >= len). */
PC_API int pc_value_list_set(pc_value *list, size_t i, pc_value *item);

/* pc_value_list_set_steal: pc_value_list_set taking over item, also on
 * failure. */
PC_API int pc_value_list_set_steal(pc_value *list, size_t i, pc_value *item);

/* pc_value_dict_set maps key to value (both borrowed). A key equal to an
 * existing one (Python equality: 1, 1.0 and True are the same key) replaces
 * that entry's value and keeps its key and position, as in Python.
 * Python: d[key] = value. Returns 0, -EINVAL (not a dict, NULL argument, or
 * an unhashable key: list, dict, set, or a tuple containing one),
 * PC_ELIMIT (key nested too deep), -ENOMEM. */
PC_API int pc_value_dict_set(pc_value *dict, pc_value *key, pc_value *value);

/* pc_value_dict_set_steal: pc_value_dict_set taking over key and value,
 * also on failure. */
PC_API int pc_value_dict_set_steal(pc_value *dict, pc_value *key,
                                   pc_value *value);

/* pc_value_dict_set_str: pc_value_dict_set with a str key made from the
 * NUL-terminated UTF-8 key; value borrowed. -EINVAL also for invalid UTF-8. */
PC_API int pc_value_dict_set_str(pc_value *dict, const char *key,
                                 pc_value *value);

/* pc_value_dict_set_str_steal: pc_value_dict_set_str taking over value, also
 * on failure. */
PC_API int pc_value_dict_set_str_steal(pc_value *dict, const char *key,
                                       pc_value *value);

/* pc_value_dict_get returns the value for key (borrowed), or NULL when the
 * key is absent, unhashable or dict is not a dict. Python: d.get(key). */
PC_API pc_value *pc_value_dict_get(const pc_value *dict, const pc_value *key);

/* pc_value_dict_get_str: pc_value_dict_get with a str key given as
 * NUL-terminated UTF-8. */
PC_API pc_value *pc_value_dict_get_str(const pc_value *dict, const char *key);

/* pc_value_dict_item stores the i-th entry, in insertion order, into *key
 * and *value (borrowed; either pointer may be NULL). Returns 0, -EINVAL (not
 * a dict), -ERANGE (i >= len). Python: list(d.items())[i]. */
PC_API int pc_value_dict_item(const pc_value *dict, size_t i, pc_value **key,
                              pc_value **value);

/* pc_value_dict_del removes key and releases its entry; later entries keep
 * their order. Python: del d[key]. Returns 0, -ENOENT (absent), -EINVAL (not
 * a dict, NULL or unhashable key). */
PC_API int pc_value_dict_del(pc_value *dict, const pc_value *key);

/* pc_value_set_add adds item (borrowed) to a set or frozenset; an element
 * equal to one already there is ignored (the first one stays). Elements keep
 * their arrival order. Python: s.add(item). Returns 0, -EINVAL (not a set,
 * NULL or unhashable item), PC_ELIMIT, -ENOMEM. */
PC_API int pc_value_set_add(pc_value *set, pc_value *item);

/* pc_value_set_add_steal: pc_value_set_add taking over item, also on
 * failure. */
PC_API int pc_value_set_add_steal(pc_value *set, pc_value *item);

/* pc_value_contains tells whether item is an element of a set or frozenset
 * or a key of a dict: 1 yes, 0 no, -EINVAL (wrong type, NULL, unhashable
 * item), PC_ELIMIT. Python: item in s. */
PC_API int pc_value_contains(const pc_value *container, const pc_value *item);

/* ---------------------------------------------------------- comparison */

/* pc_value_equal compares with Python's ==: numbers by value across bool,
 * int and float (1 == 1.0 == True, and so as dict keys), dicts and sets
 * regardless of order, set == frozenset, list != tuple, str != bytes.
 * NaN is unequal to everything, itself included, except where Python
 * containers compare by identity first: the same NaN object inside two
 * containers compares equal, as in Python.
 * Returns 1 (equal), 0 (not equal), or PC_ELIMIT (nested deeper than
 * PC_VALUE_MAX_DEPTH, or more than about four million containers visited).
 * NULL equals only NULL. */
PC_API int pc_value_equal(const pc_value *a, const pc_value *b);

/* pc_value_identical is a strict structural comparison, stricter than ==:
 * same types all the way down (True is not 1), floats bit for bit (NaN
 * payloads and -0.0 included), dict entries and set elements in the same
 * order. It is what a lossless round trip preserves. Returns 1, 0 or
 * PC_ELIMIT. Python: no direct equivalent. */
PC_API int pc_value_identical(const pc_value *a, const pc_value *b);

/* ---------------------------------------------------------- repr */

/* pc_value_repr returns malloc'd text equal to Python's repr() of the same
 * object (release it with free): 'str' with Python's quote choice and
 * escapes (printable non-ASCII stays as is; the printable classification
 * is Python 3.11's, Unicode 14.0), b'bytes', floats as the shortest text
 * that reads back bit-identically (1e+16, 1e-05, inf, nan, -0.0), ints of
 * any size in decimal (also beyond Python's 4300-digit str limit, where
 * Python raises), [list], (tuple,), {dict}, {set} (elements in arrival
 * order, which is Python's order for a set that came through pickle),
 * set(), frozenset({...}). Returns NULL for NULL, on allocation failure, or
 * when v nests deeper than PC_VALUE_MAX_DEPTH. Python: repr(v). */
PC_API char *pc_value_repr(const pc_value *v);

/* pc_value_repr_append appends repr(v) (without a NUL) to out. Returns 0,
 * -EINVAL (NULL), PC_ELIMIT, -ENOMEM; on failure out keeps its length. */
PC_API int pc_value_repr_append(const pc_value *v, pc_buffer *out);

/* ------------------------------------------------------------------------ */
/* Pickle codec                                                              */
/* ------------------------------------------------------------------------ */
/*
 * The codec between pc_value and Python's pickle format, safe by
 * construction: the decoder knows only the data subset of pickle and never
 * imports, calls or builds anything.
 *
 * Decoding accepts what Python 3.8-3.14 produce for the types above with
 * protocols 0 to 5: FRAME, the memo (PUT/BINPUT/LONG_BINPUT/MEMOIZE and
 * GET/BINGET/LONG_BINGET: a value referenced twice decodes as one shared
 * value), every short and long form of each type, and the two forms older
 * protocols use for types without an opcode, recognised exactly and without
 * importing anything:
 *   - bytes in protocols 0-2: GLOBAL _codecs.encode REDUCE (str, 'latin1'),
 *     and GLOBAL __builtin__.bytes (or builtins.bytes) REDUCE ();
 *   - set and frozenset in protocols 0-3: GLOBAL __builtin__.set /
 *     frozenset (or builtins.*) REDUCE (list,).
 * Python 2 strings (STRING, BINSTRING, SHORT_BINSTRING) decode as str when
 * ASCII (Python 3's default, encoding='ASCII'). BYTEARRAY8 (protocol 5)
 * decodes as bytes: there is no bytearray type, and Python considers
 * bytearray(b'x') == b'x'.
 *
 * Refused input, with the error code the decoder returns:
 *   PC_EUNSAFE: an opcode that would import, call or build anything outside
 *     the exact forms above: GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ,
 *     NEWOBJ, NEWOBJ_EX, PERSID, BINPERSID, EXT1/2/4, NEXT_BUFFER,
 *     READONLY_BUFFER;
 *   PC_EPROTO: malformed input: unknown opcode, truncated stream, lengths
 *     larger than the data present, stack underflow, a missing memo entry,
 *     invalid UTF-8, unhashable dict keys or set elements, bytes after STOP,
 *     more than one value left at STOP, and self-referencing structures (a
 *     list that contains itself, as Python pickles `l = []; l.append(l)`):
 *     reference counting could not free them, so they are refused;
 *   PC_ELIMIT: nesting deeper than PC_VALUE_MAX_DEPTH, a memo index beyond
 *     the input's length, an int of more than 4300 decimal digits in the
 *     text form of protocol 0 (Python's own limit);
 *   -ENOMEM. Memory use is bounded by a small multiple of the input size:
 *     no length field is trusted before the bytes it announces are there.
 */

/* Protocol pc_pickle_dumps uses by default: what Python 3.8-3.13's
 * multiprocessing sends. */
#define PC_PICKLE_DEFAULT_PROTOCOL 4
/* Highest protocol the codec reads and writes. */
#define PC_PICKLE_HIGHEST_PROTOCOL 5

/* Options for pc_pickle_serializer(): pass a pointer to one as the
 * serializer's ctx (or NULL for protocol 4). */
typedef struct pc_pickle_options {
  int protocol; /* 2, 3, 4 or 5 */
} pc_pickle_options;

/* Details of a decoding failure (all fields set when the call fails). */
typedef struct pc_pickle_error {
  int code;          /* the code the call returned */
  size_t offset;     /* byte offset of the offending opcode */
  int opcode;        /* the opcode byte, or -1 when none applies */
  char message[160]; /* e.g. "GLOBAL 'os system' at offset 2: refusing to
                        import (not one of the data-only forms)" */
} pc_pickle_error;

/* pc_pickle_dumps appends the pickle of v to out with the given protocol
 * (2, 3, 4 or 5; -1 means PC_PICKLE_DEFAULT_PROTOCOL). The output follows
 * CPython's own pickler opcode for opcode (framing and memo included), so
 * Python's pickle.loads reads it back to an equal object, and for values that
 * came from Python it is byte-identical to Python's pickle.dumps.
 * Shared references (the same pc_value twice) are written once and
 * referenced through the memo, as Python does.
 * Returns 0, -EINVAL (NULL, unsupported protocol), PC_ELIMIT (nested deeper
 * than PC_VALUE_MAX_DEPTH), PC_EENCODE (a str or bytes longer than protocol
 * 2/3 can carry), -ENOMEM. On failure out keeps its previous length.
 * Never blocks; thread-safe on distinct buffers. Python:
 * pickle.dumps(v, protocol). */
PC_API int pc_pickle_dumps(const pc_value *v, int protocol, pc_buffer *out);

/* pc_pickle_loads decodes the pickle in data[0..len) into *out (a new
 * reference). err may be NULL; when it is not and the call fails, it tells
 * what and where. Returns 0 or PC_EPROTO, PC_EUNSAFE, PC_ELIMIT, -ENOMEM,
 * -EINVAL (NULL arguments); see "Refused input" above. *out is written only
 * on success. Never blocks; thread-safe. Python: pickle.loads(data), minus
 * everything that is not data. */
PC_API int pc_pickle_loads(const void *data, size_t len, pc_value **out,
                           pc_pickle_error *err);

/* pc_pickle_serializer returns the pickle codec as a serializer (a static
 * table; never NULL): encode takes a `const pc_value *`, decode produces a
 * `pc_value *` (new reference), release is pc_value_free. Its ctx is NULL
 * (protocol 4) or a `const pc_pickle_options *` that outlives the
 * connection. This is what pc_send/pc_recv use when a connection has no
 * serializer of its own. */
PC_API const pc_serializer *pc_pickle_serializer(void);

#ifdef __cplusplus
}
#endif
#endif
