/*
 * lodge-agent: Lodge's guest agent. Shared declarations of its parts: the frame codec and the
 * output queue (lodge-agent.c), the file calls (files.c), hello and guest state (info.c).
 * The protocol is described in docs/vm-agent.md and in agent-protocol.ts on the host side.
 */
#ifndef LODGE_AGENT_H
#define LODGE_AGENT_H
#include <stddef.h>
#include <stdint.h>

#define AGENT_VERSION "1.0"

/* Frame header: u32 payload length, u32 channel, u8 type; little-endian. */
#define HDR 9
#define MAX_PAYLOAD (1u << 20)
/* Bytes a side may send on a channel before the other grants more (WINDOW). */
#define INITIAL_WINDOW (256u * 1024)
#define CHUNK 32768

/* host -> agent */
enum {
  H_HELLO = 1, H_EXEC = 2, H_DATA = 3, H_SIGNAL = 4, H_RESIZE = 5, H_WINDOW = 6, H_CLOSE = 7,
  H_STAT = 16, H_READ = 17, H_WRITE = 18, H_MKDIR = 19, H_SYMLINK = 20, H_DELETE = 21, H_STATE = 22,
};
/* agent -> host */
enum {
  A_HELLO = 0x81, A_STARTED = 0x82, A_STDOUT = 0x83, A_STDERR = 0x84, A_EXIT = 0x85, A_OK = 0x86,
  A_WINDOW = 0x87, A_ERROR = 0x8f,
};

#define HELLO_MAGIC "LODGEHI1"
#define REPLY_MAGIC "LODGEAG1"

/* A growing byte string; also used to build JSON. */
struct sb {
  char *d;
  size_t len, cap;
};
void sb_add(struct sb *b, const void *p, size_t n);
void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_json_string(struct sb *b, const char *s);
void sb_free(struct sb *b);

/* Queues a frame to the host. */
void send_frame(uint32_t chan, uint8_t type, const void *payload, size_t len);
void send_i32(uint32_t chan, uint8_t type, int32_t v);
void send_error(uint32_t chan, int err, const char *what);

/* files.c: one-shot calls answer A_OK (JSON or empty) or A_ERROR on the channel. */
void file_stat(uint32_t chan, const char *path);
void file_mkdir(uint32_t chan, const char *path, int64_t uid, int64_t gid, int64_t mode);
void file_symlink(uint32_t chan, const char *target, const char *path, int64_t uid, int64_t gid);
void file_delete(uint32_t chan, const char *path);
/* Opens for reading: returns the fd (and answers A_OK {"size":N}) or -1 (answered A_ERROR). */
int file_open_read(uint32_t chan, const char *path);
/* Opens for writing: returns the fd (and answers A_OK) or -1 (answered A_ERROR). */
int file_open_write(uint32_t chan, const char *path, int64_t uid, int64_t gid, int64_t mode, int append);

/* info.c */
void info_hello(struct sb *json);
void info_state(struct sb *json);

#endif
