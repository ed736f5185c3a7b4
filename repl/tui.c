/* tui.c: the full-screen view's terminal loop (see tui.h).
 *
 * Pieces, in the order a byte travels: the input reader (poll on stdin and a
 * self-pipe that the SIGINT/SIGWINCH handlers write to), the key splitter
 * (escape sequences to vz keys), the router (the view's keys to
 * vz_view_key, the rest to readline through rl_getc_function), the line
 * runner (cmd_run_line with stdout/stderr captured into the output panel),
 * the throttled step hook, and the frame (vz_view_draw into one grid,
 * vz_term_draw_changed, doupdate).  Readline never touches the terminal:
 * its prep/deprep functions are no-ops and its redisplay only marks the
 * command line for the next frame.
 *
 * Global state: readline and ncurses are process-wide, and signal handlers
 * need to find the terminal, so one tui (tui_T) and the crash-path data are
 * static; tui_run is not re-entrant.
 */
#define _GNU_SOURCE   /* memfd_create */
#include "tui.h"

#include "cmd_view.h"
#include "termdraw.h"
#include "view.h"
#include "commands.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <term.h>
#include <readline/history.h>
#include <readline/readline.h>

#define TUI_FPS 30              /* most frames a second while a command runs */
#define TUI_DRAW_SHARE 0.05     /* and at most this share of the time spent drawing */
#define TUI_ESC_MS 40           /* a lone ESC becomes the Esc key after this */
#define TUI_LOG_LINES 4000
#define TUI_DRAIN_RESET (4 << 20)

typedef struct {
    cmd_env *e;
    cmdv *cv;
    vz_view *v;
    SCREEN *scr;
    FILE *tty_out;
    vz_term *term;
    vz_grid *grid, *prev;
    int prev_ok;
    vz_log *log;
    /* captured output */
    int out_fd, err_fd;
    off_t out_off, err_off;
    int saved_out, saved_err;
    int saved_color;
    /* input */
    unsigned char in[4096];
    int in_n;
    double in_since;             /* when an incomplete sequence started waiting */
    unsigned char rlq[8192];     /* bytes waiting for readline */
    int rlq_head, rlq_n;
    char *line;                  /* a finished line waiting to run */
    int have_line, eof;
    char *last_step;             /* an empty line repeats the last good `step` */
    /* state */
    int dirty, running, ctrlc, confirm;
    int stopped;                 /* the last command was stopped by Ctrl-C */
    const tui_action *acts;      /* -c / -x, run one after the other */
    int n_acts, act_i;
    double run_start, last_frame, last_cost;   /* end and cost (s) of the last frame */
    double avg_cost;             /* moving average of the cost of frames during runs */
    char status[256], prompt[160], banner[600];
    /* the tour (-x file) */
    FILE *tour;
    char tour_name[256];
    int tour_line, tour_steps, tour_step, tour_paused, tour_is_tour;
    /* stats (METASTATE_TUI_STATS) */
    unsigned long frames;
    double frame_ms_sum, frame_ms_max;
    FILE *stats;
} tui;

static tui *tui_T;
static int tui_sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t tui_winch, tui_sigint;
static volatile sig_atomic_t *tui_stop_flag;
/* the crash path: what a signal handler needs to restore the terminal */
static volatile sig_atomic_t tui_active;
static int tui_tty_fd = -1, tui_crash_out = -1, tui_crash_err = -1;
static struct termios tui_tios;
static char tui_reset[256];
static int tui_reset_len;
static struct sigaction tui_old_int, tui_old_winch;

static double tui_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- signals ---- */

static void tui_poke(char c)
{
    if (tui_sig_pipe[1] >= 0) {
        ssize_t r = write(tui_sig_pipe[1], &c, 1);
        (void)r;
    }
}

static void tui_on_sigint(int sig)
{
    (void)sig;
    tui_sigint = 1;
    if (tui_stop_flag) *tui_stop_flag = 1;
    tui_poke('i');
}

static void tui_on_winch(int sig)
{
    (void)sig;
    tui_winch = 1;
    tui_poke('w');
}

/* Restore the terminal with async-signal-safe calls only. */
static void tui_restore_raw(void)
{
    if (!tui_active) return;
    tui_active = 0;
    if (tui_tty_fd >= 0) {
        ssize_t r = write(tui_tty_fd, tui_reset, (size_t)tui_reset_len);
        (void)r;
        tcsetattr(tui_tty_fd, TCSANOW, &tui_tios);
    }
    if (tui_crash_out >= 0) dup2(tui_crash_out, STDOUT_FILENO);
    if (tui_crash_err >= 0) dup2(tui_crash_err, STDERR_FILENO);
}

static void tui_on_fatal(int sig)
{
    tui_restore_raw();
    static const char crash[] = "metastate: crashed; the terminal was restored\n";
    static const char term[] = "metastate: terminated by a signal; the terminal was restored\n";
    int fatal = sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGABRT;
    ssize_t r = fatal ? write(STDERR_FILENO, crash, sizeof crash - 1) : write(STDERR_FILENO, term, sizeof term - 1);
    (void)r;
    /* installed with SA_RESETHAND: the default action now ends the process */
    raise(sig);
}

static const int tui_fatal_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM, SIGHUP, SIGQUIT};
#define TUI_N_FATAL ((int)(sizeof tui_fatal_sigs / sizeof tui_fatal_sigs[0]))
static struct sigaction tui_old_fatal[TUI_N_FATAL];

static void tui_signals_on(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = tui_on_sigint;
    sigaction(SIGINT, &sa, &tui_old_int);
    sa.sa_handler = tui_on_winch;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGWINCH, &sa, &tui_old_winch);
    sa.sa_handler = tui_on_fatal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    for (int i = 0; i < TUI_N_FATAL; i++) sigaction(tui_fatal_sigs[i], &sa, &tui_old_fatal[i]);
}

static void tui_signals_off(void)
{
    sigaction(SIGINT, &tui_old_int, NULL);
    sigaction(SIGWINCH, &tui_old_winch, NULL);
    for (int i = 0; i < TUI_N_FATAL; i++) sigaction(tui_fatal_sigs[i], &tui_old_fatal[i], NULL);
}

/* the terminfo strings that undo the full-screen mode, kept for the crash path */
static void tui_reset_add(const char *cap)
{
    char *s = tigetstr((char *)cap);
    if (!s || s == (char *)-1) return;
    size_t n = strlen(s);
    if ((size_t)tui_reset_len + n < sizeof tui_reset) {
        memcpy(tui_reset + tui_reset_len, s, n);
        tui_reset_len += (int)n;
    }
}

/* ---- captured output ---- */

static int tui_memfd(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd >= 0) return fd;
    FILE *f = tmpfile();                      /* no memfd: an unlinked file */
    return f ? dup(fileno(f)) : -1;
}

static void tui_drain_fd(tui *t, int fd, off_t *off, vz_log_kind k)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return;
    char buf[16384];
    while (*off < st.st_size) {
        ssize_t n = pread(fd, buf, sizeof buf, *off);
        if (n <= 0) break;
        vz_log_add(t->log, buf, (size_t)n, k);
        *off += n;
        t->dirty = 1;
    }
    if (*off >= TUI_DRAIN_RESET && *off == st.st_size) {
        /* fd 1 or 2 shares this file's offset: both start again at 0 */
        if (ftruncate(fd, 0) == 0) {
            lseek(fd, 0, SEEK_SET);
            *off = 0;
        }
    }
}

static void tui_drain(tui *t)
{
    fflush(stdout);
    fflush(stderr);
    tui_drain_fd(t, t->out_fd, &t->out_off, VZ_LOG_OUT);
    tui_drain_fd(t, t->err_fd, &t->err_off, VZ_LOG_ERR);
}

/* ---- the frame ---- */

static void tui_prompt(tui *t)
{
    snprintf(t->prompt, sizeof t->prompt, "%s:%lld> ", t->e->s->branch, (long long)t->e->s->cur.position);
    rl_set_prompt(t->prompt);
}

static void tui_draw(tui *t)
{
    double t0 = tui_now();
    int W = COLS, H = LINES;
    if (W < 1 || H < 1) return;
    if (t->grid->w != W || t->grid->h != H) {
        vz_grid_resize(t->grid, W, H);
        t->prev_ok = 0;
    }
    const vz_data *d = cmdv_data(t->cv, 0);
    const char *banner = NULL;
    char bbuf[700];
    if (t->confirm) banner = "Quit metastate? (y/n)";
    else if (t->tour_paused && t->banner[0]) {
        snprintf(bbuf, sizeof bbuf, " tour %d/%d: %s  [Enter: next]", t->tour_step, t->tour_steps, t->banner);
        banner = bbuf;
    }
    /* readline's own prompt while it searches (Ctrl-R: "(reverse-i-search)`x': ") */
    const char *prompt = rl_display_prompt && *rl_display_prompt ? rl_display_prompt : t->prompt;
    vz_chrome ch = { prompt, rl_line_buffer ? rl_line_buffer : "", rl_point, t->log, t->status, banner,
                     t->running };
    int cx = 0, cy = 0;
    vz_view_draw(t->grid, t->v, d, &ch, &cx, &cy);
    vz_term_draw_changed(t->term, stdscr, t->grid, t->prev_ok ? t->prev : NULL);
    /* keep what was drawn, to send only the changes next time */
    if (vz_grid_resize(t->prev, W, H) == 0) {
        memcpy(t->prev->cells, t->grid->cells, (size_t)W * (size_t)H * sizeof(vz_cell));
        t->prev_ok = 1;
    } else {
        t->prev_ok = 0;
    }
    if (t->v->focus == VZ_P_CMD && !t->v->help && !t->confirm) {
        curs_set(1);
        wmove(stdscr, cy, cx);
    } else {
        curs_set(0);
    }
    wnoutrefresh(stdscr);
    doupdate();
    t->dirty = 0;
    t->last_frame = tui_now();
    t->last_cost = t->last_frame - t0;
    double ms = t->last_cost * 1e3;
    t->frames++;
    t->frame_ms_sum += ms;
    if (ms > t->frame_ms_max) t->frame_ms_max = ms;
}

static void tui_resize(tui *t)
{
    tui_winch = 0;
    struct winsize ws;
    if (ioctl(tui_tty_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
        resize_term(ws.ws_row, ws.ws_col);
    clearok(curscr, TRUE);
    t->prev_ok = 0;
    t->dirty = 1;
}

/* ---- keys ---- */

/* Split one key off b[0..n).  Returns the bytes it takes (0: a sequence
 * that is not complete yet) and sets *key to a vz key, a code point, or -1
 * for bytes that only readline knows (Alt-x, Delete, Ctrl-arrows, ...). */
static int tui_key(const unsigned char *b, int n, int *key)
{
    *key = -1;
    if (n < 1) return 0;
    unsigned c = b[0];
    if (c == 0x1B) {
        if (n < 2) return 0;
        if (b[1] == '[' || b[1] == 'O') {
            int i = 2;
            if (b[1] == 'O') {
                if (n < 3) return 0;
                switch (b[2]) {
                case 'A': *key = VZ_K_UP; break;
                case 'B': *key = VZ_K_DOWN; break;
                case 'C': *key = VZ_K_RIGHT; break;
                case 'D': *key = VZ_K_LEFT; break;
                case 'H': *key = VZ_K_HOME; break;
                case 'F': *key = VZ_K_END; break;
                case 'P': *key = VZ_K_F1; break;
                }
                return 3;
            }
            while (i < n && !(b[i] >= 0x40 && b[i] <= 0x7E)) i++;
            if (i >= n) return i > 32 ? n : 0;   /* give up on absurd sequences */
            int len = i + 1;
            char fin = (char)b[i];
            char par[40] = "";
            if (i - 2 < (int)sizeof par) { memcpy(par, b + 2, (size_t)(i - 2)); par[i - 2] = 0; }
            if (!par[0]) {
                switch (fin) {
                case 'A': *key = VZ_K_UP; break;
                case 'B': *key = VZ_K_DOWN; break;
                case 'C': *key = VZ_K_RIGHT; break;
                case 'D': *key = VZ_K_LEFT; break;
                case 'H': *key = VZ_K_HOME; break;
                case 'F': *key = VZ_K_END; break;
                case 'Z': *key = VZ_K_BTAB; break;
                }
            } else if (fin == '~') {
                if (!strcmp(par, "5")) *key = VZ_K_PGUP;
                else if (!strcmp(par, "6")) *key = VZ_K_PGDN;
                else if (!strcmp(par, "1") || !strcmp(par, "7")) *key = VZ_K_HOME;
                else if (!strcmp(par, "4") || !strcmp(par, "8")) *key = VZ_K_END;
                else if (!strcmp(par, "11")) *key = VZ_K_F1;
            }
            return len;
        }
        return 2;                            /* Alt-<key>: readline's */
    }
    if (c == '\t') { *key = VZ_K_TAB; return 1; }
    if (c == '\r' || c == '\n') { *key = VZ_K_ENTER; return 1; }
    if (c == 0x0C) { *key = VZ_K_CTRL_L; return 1; }
    if (c < 0x20 || c == 0x7F) return 1;    /* other control keys: readline's */
    int len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (n < len) return 0;
    uint32_t cp;
    len = vz_utf8_next((const char *)b, (size_t)len, &cp);
    *key = (int)cp;
    return len;
}

static void tui_rlq_push(tui *t, const unsigned char *b, int n)
{
    for (int i = 0; i < n && t->rlq_n < (int)sizeof t->rlq; i++) {
        t->rlq[(t->rlq_head + t->rlq_n) % (int)sizeof t->rlq] = b[i];
        t->rlq_n++;
    }
}

/* readline reads its bytes here */
static int tui_rl_getc(FILE *f)
{
    (void)f;
    tui *t = tui_T;
    if (t && t->rlq_n > 0) {
        int c = t->rlq[t->rlq_head];
        t->rlq_head = (t->rlq_head + 1) % (int)sizeof t->rlq;
        t->rlq_n--;
        return c;
    }
    /* readline wants more of a sequence than was queued: wait for it */
    unsigned char c;
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    if (poll(&p, 1, 200) == 1 && read(STDIN_FILENO, &c, 1) == 1) return c;
    return 0x1B;   /* nothing came: end the sequence harmlessly (ESC alone) */
}

static int tui_rl_avail(void)
{
    return tui_T && tui_T->rlq_n > 0;
}

static void tui_rl_redisplay(void)
{
    if (tui_T) tui_T->dirty = 1;
}

static void tui_rl_noprep(int meta)
{
    (void)meta;
}

static void tui_rl_nodeprep(void) {}

static void tui_rl_line(char *line)
{
    tui *t = tui_T;
    if (!t) { free(line); return; }
    if (!line) {                             /* Ctrl-D on an empty line */
        t->eof = 1;
        return;
    }
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p) {
        HIST_ENTRY *h = history_length ? history_get(history_base + history_length - 1) : NULL;
        if (!h || strcmp(h->line, line) != 0) add_history(line);
    }
    free(t->line);
    t->line = line;
    t->have_line = 1;
}

/* tab completion with several matches: list them in the output panel */
static void tui_rl_matches(char **m, int n, int maxlen)
{
    (void)maxlen;
    tui *t = tui_T;
    if (!t) return;
    char buf[2048];
    int k = 0;
    for (int i = 1; i <= n && k < (int)sizeof buf - 80; i++)
        k += snprintf(buf + k, sizeof buf - (size_t)k, "%s%s", i > 1 ? "  " : "", m[i]);
    if (k >= (int)sizeof buf - 80) snprintf(buf + k, sizeof buf - (size_t)k, "  ... (%d in all)", n);
    vz_log_addf(t->log, VZ_LOG_NOTE, "%s", buf);
    t->dirty = 1;
}

static void tui_feed_readline(tui *t)
{
    while (t->rlq_n > 0 && !t->have_line && !t->eof) rl_callback_read_char();
}

/* Route one key (bytes b[0..n)); idle: readline may run now. */
static void tui_route(tui *t, int key, const unsigned char *b, int n, int idle)
{
    if (t->confirm) {
        t->confirm = 0;
        if (key == 'y' || key == 'Y') t->eof = 1;
        else snprintf(t->status, sizeof t->status, "not quitting");
        t->dirty = 1;
        return;
    }
    t->ctrlc = 0;
    int line_empty = !rl_line_buffer || !rl_line_buffer[0];
    if (idle && t->tour_paused && key == VZ_K_ENTER && line_empty && t->v->focus == VZ_P_CMD) {
        t->tour_paused = 0;                  /* the tour's next step */
        return;
    }
    if (key != -1 && vz_view_wants(t->v, key, line_empty)) {
        int f = vz_view_key(t->v, key, cmdv_data(t->cv, 0));
        if (f & VZ_KF_FULL) { clearok(curscr, TRUE); t->prev_ok = 0; }
        if (f & (VZ_KF_DRAW | VZ_KF_REFILL)) t->dirty = 1;
        if (!(f & VZ_KF_TOCMD)) return;
    }
    tui_rlq_push(t, b, n);
    if (idle) tui_feed_readline(t);
}

/* Read what stdin has and route every complete key.  Incomplete escape
 * sequences wait up to TUI_ESC_MS, then a lone ESC is the Esc key. */
static void tui_input(tui *t, int idle)
{
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    while (poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP))) {
        if (t->in_n >= (int)sizeof t->in) break;
        ssize_t r = read(STDIN_FILENO, t->in + t->in_n, sizeof t->in - (size_t)t->in_n);
        if (r <= 0) {
            if (r == 0 || (errno != EINTR && errno != EAGAIN)) t->eof = 1;
            break;
        }
        t->in_n += (int)r;
    }
    int at = 0;
    while (at < t->in_n && !t->eof) {
        if (idle && t->have_line) break;     /* run the line first; the rest is typed ahead */
        int key, k = tui_key(t->in + at, t->in_n - at, &key);
        if (k == 0) {
            if (t->in_since == 0) t->in_since = tui_now();
            if (tui_now() - t->in_since < TUI_ESC_MS / 1e3) break;
            /* timed out: a lone ESC, or junk that never completed */
            key = t->in[at] == 0x1B ? VZ_K_ESC : -1;
            k = 1;
        }
        t->in_since = 0;
        tui_route(t, key, t->in + at, k, idle);
        at += k;
    }
    memmove(t->in, t->in + at, (size_t)(t->in_n - at));
    t->in_n -= at;
}

/* ---- running commands ---- */

/* after every watched step: a frame when 1/TUI_FPS s has passed and the
 * frames so far took at most TUI_DRAW_SHARE of the time (a large terminal
 * gets fewer frames rather than a slower run), or at once when the terminal
 * was resized; and the view's keys typed meanwhile */
static void tui_on_step(void *ctx)
{
    tui *t = ctx;
    double now = tui_now();
    double gap = (t->avg_cost > t->last_cost ? t->avg_cost : t->last_cost) * (1 / TUI_DRAW_SHARE - 1);
    if (gap < 1.0 / TUI_FPS) gap = 1.0 / TUI_FPS;
    if (!tui_winch && now - t->last_frame < gap) return;
    if (tui_winch) tui_resize(t);
    tui_input(t, 0);
    tui_drain(t);
    double el = now - t->run_start;
    snprintf(t->status, sizeof t->status, "running %s %.1f s  Ctrl-C stops", t->e->o->cmd, el);
    tui_draw(t);
    t->last_cost = t->last_frame - now;   /* the whole frame: keys, output, drawing */
    t->avg_cost = t->avg_cost > 0 ? 0.7 * t->avg_cost + 0.3 * t->last_cost : t->last_cost;
}

static int tui_run_cmd(tui *t, const char *line, int echo)
{
    char msg[1024];
    tui_drain(t);
    if (echo) vz_log_addf(t->log, VZ_LOG_CMD, "%s%s", t->prompt, line);
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    char name[48];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(p, " \t"), p);
    t->running = 1;
    tui_sigint = 0;
    t->run_start = tui_now();
    snprintf(t->status, sizeof t->status, "running %s  Ctrl-C stops", name);
    tui_draw(t);
    int rc = cmd_run_line(t->e, line, NULL, msg, sizeof msg);
    double el = tui_now() - t->run_start;
    t->running = 0;
    vz_log_break(t->log);
    tui_drain(t);
    vz_log_break(t->log);
    int stopped = sess_interrupted(t->e->s) || tui_sigint;
    t->stopped = stopped;
    if (rc < 0) snprintf(t->status, sizeof t->status, "%s failed", name);
    else if (rc > 0) snprintf(t->status, sizeof t->status, "%s%s %.3f s", name, stopped ? " stopped" : "", el);
    if (t->stats && rc != 0) fprintf(t->stats, "command %s %.6f s\n", name, el);
    if (rc > 0 && echo) {
        int is_step = !strncmp(p, "step", 4) && (p[4] == 0 || p[4] == ' ' || p[4] == '\t');
        if (is_step) {
            free(t->last_step);
            t->last_step = strdup(p);
        }
    }
    if (*t->e->s->stop) *t->e->s->stop = 0;
    tui_sigint = 0;
    tui_prompt(t);
    cmdv_data(t->cv, 1);
    t->dirty = 1;
    return rc;
}

/* ---- the tour: a -x file in the view ---- */

static int tui_tour_open(tui *t, const char *path)
{
    ms_err err;
    FILE *f = ms_fopen_read(path, "command file", &err);
    if (!f) {
        vz_log_addf(t->log, VZ_LOG_ERR, "-x %s", err.msg);
        return -1;
    }
    char *l = NULL;
    size_t cap = 0, n;
    long lineno = 0;
    int steps = 0, got;
    while ((got = ms_read_line(f, path, &lineno, CMD_MAX_LINE, &l, &cap, &n, &err)) > 0)
        if (!strncmp(l, "#>", 2)) steps++;
    free(l);
    if (got < 0) {
        vz_log_addf(t->log, VZ_LOG_ERR, "-x %s", err.msg);
        fclose(f);
        return -1;
    }
    rewind(f);
    t->tour = f;
    t->tour_steps = steps;
    t->tour_step = 0;
    t->tour_line = 0;
    t->tour_is_tour = steps > 0;
    t->tour_paused = 0;
    snprintf(t->tour_name, sizeof t->tour_name, "%s", path);
    return 0;
}

static void tui_tour_end(tui *t, const char *why)
{
    if (!t->tour) return;
    fclose(t->tour);
    t->tour = NULL;
    t->tour_paused = 0;
    t->banner[0] = 0;
    if (why) vz_log_addf(t->log, VZ_LOG_NOTE, "%s: %s", t->tour_name, why);
    t->dirty = 1;
}

/* Run the file's lines up to the next "#>" step (then pause) or its end. */
static void tui_tour_go(tui *t)
{
    char *l = NULL;
    size_t cap = 0, n;
    long lineno = t->tour_line;
    ms_err err;
    int got;
    while (t->tour && !t->tour_paused && !t->e->quit &&
           (got = ms_read_line(t->tour, t->tour_name, &lineno, CMD_MAX_LINE, &l, &cap, &n, &err)) != 0) {
        if (got < 0) {
            vz_log_addf(t->log, VZ_LOG_ERR, "-x %s", err.msg);
            tui_tour_end(t, "stopped: the file could not be read");
            break;
        }
        t->tour_line++;
        if (!strncmp(l, "#>", 2)) {
            const char *s = l + 2;
            while (*s == ' ') s++;
            snprintf(t->banner, sizeof t->banner, "%s", s);
            t->tour_step++;
            t->tour_paused = 1;
            t->dirty = 1;
            vz_log_addf(t->log, VZ_LOG_NOTE, "[tour %d/%d] %s", t->tour_step, t->tour_steps, s);
            break;
        }
        const char *p = l;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') continue;
        int rc = tui_run_cmd(t, p, 1);
        if (t->stopped) {
            tui_tour_end(t, "stopped by Ctrl-C");
            break;
        }
        if (!t->tour_is_tour && rc < 0) {
            char why[64];
            snprintf(why, sizeof why, "stopped at the failing command on line %d", t->tour_line);
            tui_tour_end(t, why);
            break;
        }
    }
    free(l);
    if (t->tour && !t->tour_paused && !t->e->quit) tui_tour_end(t, t->tour_is_tour ? "the tour is over" : NULL);
}

/* ---- set-up and tear-down ---- */

int tui_possible(char *why, size_t cap)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        snprintf(why, cap, "stdin or stdout is not a terminal");
        return 0;
    }
    const char *term = getenv("TERM");
    if (!term || !*term || !strcmp(term, "dumb")) {
        snprintf(why, cap, "TERM is %s", term && *term ? "dumb" : "not set");
        return 0;
    }
    int err = 0;
    TERMINAL *saved = cur_term;
    if (setupterm((char *)term, STDOUT_FILENO, &err) != OK) {
        snprintf(why, cap, "no terminfo entry for TERM=%s", term);
        return 0;
    }
    char *cup = tigetstr("cup");
    int ok = cup && cup != (char *)-1;
    del_curterm(cur_term);
    set_curterm(saved);
    if (!ok) snprintf(why, cap, "TERM=%s cannot move the cursor", term);
    return ok;
}

static void tui_atexit(void)
{
    if (!tui_active) return;
    endwin();
    tui_restore_raw();
}

static int tui_utf8(void)
{
    const char *cs = nl_langinfo(CODESET);
    return cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
}

static int tui_start(tui *t, const tui_opts *o, char *why, size_t cap)
{
    setlocale(LC_CTYPE, "");
    if (tcgetattr(STDIN_FILENO, &tui_tios) != 0) {
        snprintf(why, cap, "cannot read the terminal's modes: %s", strerror(errno));
        return -1;
    }
    int fd = dup(STDOUT_FILENO);
    t->tty_out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!t->tty_out) {
        if (fd >= 0) close(fd);
        snprintf(why, cap, "cannot open the terminal: %s", strerror(errno));
        return -1;
    }
    t->scr = newterm(NULL, t->tty_out, stdin);
    if (!t->scr) {
        fclose(t->tty_out);
        snprintf(why, cap, "ncurses cannot drive TERM=%s", getenv("TERM") ? getenv("TERM") : "");
        return -1;
    }
    set_term(t->scr);
    tui_tty_fd = fileno(t->tty_out);
    tui_reset_len = 0;
    tui_reset_add("sgr0");
    tui_reset_add("cnorm");
    tui_reset_add("rmcup");
    cbreak();
    noecho();
    nonl();
    intrflush(stdscr, FALSE);
    keypad(stdscr, FALSE);       /* keys are split here, so readline sees the raw bytes */
    /* Ctrl-S / Ctrl-Q are readline's (search), not flow control */
    struct termios tt;
    if (tcgetattr(STDIN_FILENO, &tt) == 0) {
        tt.c_iflag &= ~(tcflag_t)(IXON | IXOFF);
        tcsetattr(STDIN_FILENO, TCSANOW, &tt);
        def_prog_mode();
    }
    t->term = vz_term_new(vz_depth_from_env(o->no_color));
    t->grid = vz_grid_new(COLS, LINES);
    t->prev = vz_grid_new(0, 0);
    t->log = vz_log_new(TUI_LOG_LINES);
    t->cv = cmdv_get(t->e);
    if (pipe(tui_sig_pipe) == 0) {
        fcntl(tui_sig_pipe[0], F_SETFL, O_NONBLOCK);
        fcntl(tui_sig_pipe[1], F_SETFL, O_NONBLOCK);
        fcntl(tui_sig_pipe[0], F_SETFD, FD_CLOEXEC);
        fcntl(tui_sig_pipe[1], F_SETFD, FD_CLOEXEC);
    }
    t->out_fd = tui_memfd("metastate-stdout");
    t->err_fd = tui_memfd("metastate-stderr");
    t->saved_out = dup(STDOUT_FILENO);
    t->saved_err = dup(STDERR_FILENO);
    if (!t->term || !t->grid || !t->prev || !t->log || !t->cv || t->out_fd < 0 || t->err_fd < 0 ||
        t->saved_out < 0 || t->saved_err < 0 || tui_sig_pipe[0] < 0) {
        endwin();
        snprintf(why, cap, "out of memory or file descriptors for the full-screen view");
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    dup2(t->out_fd, STDOUT_FILENO);
    dup2(t->err_fd, STDERR_FILENO);
    tui_crash_out = t->saved_out;
    tui_crash_err = t->saved_err;
    t->v = cmdv_view(t->cv);
    t->v->depth = vz_term_depth(t->term);
    t->v->ascii = !tui_utf8();
    cmdv_set_live(t->cv, 1);
    cmdv_set_step_hook(t->cv, tui_on_step, t);
    t->saved_color = t->e->o->color;
    t->e->o->color = 0;
    tui_stop_flag = t->e->s->stop;
    tui_active = 1;
    tui_T = t;
    static int registered;
    if (!registered) { atexit(tui_atexit); registered = 1; }
    tui_signals_on();

    /* readline: our bytes in, our redisplay out, hands off the terminal */
    rl_getc_function = tui_rl_getc;
    rl_input_available_hook = tui_rl_avail;
    rl_redisplay_function = tui_rl_redisplay;
    rl_prep_term_function = tui_rl_noprep;
    rl_deprep_term_function = tui_rl_nodeprep;
    rl_completion_display_matches_hook = tui_rl_matches;
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_outstream = fopen("/dev/null", "w");
    tui_prompt(t);
    rl_callback_handler_install(t->prompt, tui_rl_line);
    rl_variable_bind("bell-style", "none");
    const char *path = t->e->s->model->path;
    vz_log_addf(t->log, VZ_LOG_NOTE, "metastate %s: %s (%s colours%s).  Commands go on the line below "
                "('help' lists them); Tab moves into the panels, ? shows the keys, Ctrl-D quits.",
                MS_VERSION, path ? path : "?", vz_depth_name(t->v->depth), t->v->ascii ? ", ASCII glyphs" : "");
    const char *sp = getenv("METASTATE_TUI_STATS");
    if (sp && *sp) t->stats = fopen(sp, "w");
    return 0;
}

static void tui_stop(tui *t)
{
    rl_callback_handler_remove();
    rl_getc_function = rl_getc;
    rl_input_available_hook = NULL;
    rl_redisplay_function = rl_redisplay;
    rl_prep_term_function = rl_prep_terminal;
    rl_deprep_term_function = rl_deprep_terminal;
    rl_completion_display_matches_hook = NULL;
    if (rl_outstream && rl_outstream != stdout) fclose(rl_outstream);
    rl_outstream = NULL;
    tui_signals_off();
    cmdv_set_step_hook(t->cv, NULL, NULL);
    cmdv_set_live(t->cv, 0);
    endwin();
    delscreen(t->scr);
    fflush(stdout);
    fflush(stderr);
    dup2(t->saved_out, STDOUT_FILENO);
    dup2(t->saved_err, STDERR_FILENO);
    tui_active = 0;
    tui_T = NULL;
    tui_stop_flag = NULL;
    t->e->o->color = t->saved_color;
    if (t->stats) {
        fprintf(t->stats, "frames %lu mean_ms %.4f max_ms %.4f\n", t->frames,
                t->frames ? t->frame_ms_sum / (double)t->frames : 0.0, t->frame_ms_max);
        fclose(t->stats);
    }
    /* the last error, if the session ended on one, stays visible */
    int n = vz_log_count(t->log);
    vz_log_kind k;
    const char *last = n ? vz_log_line(t->log, n - 1, &k) : NULL;
    if (last && k == VZ_LOG_ERR) fprintf(stderr, "%s\n", last);
    fclose(t->tty_out);
    close(t->saved_out);
    close(t->saved_err);
    close(t->out_fd);
    close(t->err_fd);
    close(tui_sig_pipe[0]);
    close(tui_sig_pipe[1]);
    tui_sig_pipe[0] = tui_sig_pipe[1] = -1;
    tui_tty_fd = tui_crash_out = tui_crash_err = -1;
    vz_term_free(t->term);
    vz_grid_free(t->grid);
    vz_grid_free(t->prev);
    vz_log_free(t->log);
    free(t->line);
    free(t->last_step);
    if (t->tour) fclose(t->tour);
}

/* Ctrl-C at an idle prompt */
static void tui_idle_ctrlc(tui *t)
{
    tui_sigint = 0;
    if (*t->e->s->stop) *t->e->s->stop = 0;
    if (t->tour) {
        tui_tour_end(t, "ended by Ctrl-C");
        return;
    }
    if (t->confirm) return;
    if (rl_line_buffer && rl_line_buffer[0]) {
        rl_replace_line("", 0);
        rl_point = rl_end = 0;
        t->ctrlc = 0;
        snprintf(t->status, sizeof t->status, "line cleared (Ctrl-C again to quit)");
    } else if (++t->ctrlc >= 2) {
        t->confirm = 1;
        t->ctrlc = 0;
    } else {
        snprintf(t->status, sizeof t->status, "Ctrl-C again to quit (or Ctrl-D)");
    }
    t->dirty = 1;
}

int tui_run(cmd_env *e, const tui_opts *o, char *why, size_t cap)
{
    static tui t0;
    tui *t = &t0;
    memset(t, 0, sizeof *t);
    t->e = e;
    if (tui_start(t, o, why, cap) != 0) return -1;
    t->acts = o->acts;
    t->n_acts = o->n_acts;
    tui_draw(t);
    while (!e->quit && !t->eof) {
        if (!t->tour && t->act_i < t->n_acts && !t->have_line) {
            const tui_action *a = &t->acts[t->act_i++];
            if (a->kind == 'c') tui_run_cmd(t, a->text, 1);
            else if (tui_tour_open(t, a->text) == 0) tui_tour_go(t);
            if (t->stopped) t->act_i = t->n_acts;   /* Ctrl-C drops the rest of -c / -x */
            t->dirty = 1;
            continue;
        }
        if (tui_winch) tui_resize(t);
        if (t->have_line) {
            char *line = t->line;
            t->line = NULL;
            t->have_line = 0;
            const char *p = line;
            while (*p == ' ' || *p == '\t') p++;
            if (*p) tui_run_cmd(t, line, 1);
            else if (t->tour && t->tour_paused) t->tour_paused = 0;
            else if (t->last_step) tui_run_cmd(t, t->last_step, 1);
            free(line);
            tui_feed_readline(t);            /* lines typed ahead */
            continue;
        }
        if (t->tour && !t->tour_paused) {
            tui_tour_go(t);
            continue;
        }
        if (t->dirty) tui_draw(t);
        struct pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {tui_sig_pipe[0], POLLIN, 0}};
        int timeout = t->in_n > 0 ? TUI_ESC_MS : -1;
        int r = poll(p, 2, timeout);
        if (p[1].revents & POLLIN) {
            char junk[64];
            while (read(tui_sig_pipe[0], junk, sizeof junk) > 0) {}
        }
        if (tui_sigint) tui_idle_ctrlc(t);
        if (r < 0 && errno != EINTR) break;
        if (r >= 0 && ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) || t->in_n > 0)) tui_input(t, 1);
    }
    tui_stop(t);
    return 0;
}
