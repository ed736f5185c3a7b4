#!/bin/sh
# test_tui.sh: the full-screen view end to end, driven through tmux and read
# back with capture-pane (text, and with -e the colours as escape codes).
#
# What it checks:
# - it starts full-screen (alternate screen) and draws the panels; typed
#   commands run and the panels follow (tokens, zoom, SSE heads, position);
# - keys: Tab into the panels and arrows move the selection, Esc back, ? help,
#   tab completion of command names;
# - a long gen is live (the status says it runs) and Ctrl-C stops it;
# - a resize to 40x12 and back relayouts at once;
# - quit, Ctrl-D, Ctrl-C twice + y, a crash (SIGSEGV) and SIGTERM all leave
#   the terminal restored (normal screen, echo and icanon back);
# - the colour fallbacks: TERM=xterm-256color gives 256-colour codes, xterm 8
#   colours, NO_COLOR and --no-color no colour codes but the glyph ramp, dumb
#   the line mode (the view printed with the ramp), --plain the line mode;
# - the guided tour (-x scripts/tour.ms) pauses at each step and runs to its
#   end, and in --batch runs straight through.
# Prints one line per check; exits non-zero on any failure.  Needs tmux
# (Debian: tmux, installed by scripts/deps.sh); without it the test says so
# and fails.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
TINY=tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin
B=${B:-build}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-tui.XXXXXX") || exit 1
export TMUX_TMPDIR="$T"      # the servers' sockets go with the temporary directory
unset TMUX                   # works from inside a tmux session too
TM="tmux -L ms-tui-$$-0 -f /dev/null"
cleanup() { $TM kill-server >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; fails=$((fails + 1)); }
check() { if [ "$1" = 0 ]; then shift; ok "$@"; else shift; bad "$@"; show; fi; }
show() { $TM capture-pane -t t -p 2>/dev/null | grep -v '^ *$' | tail -8 | sed 's/^/        > /'; }

command -v tmux >/dev/null || { echo "test_tui: tmux is not installed (scripts/deps.sh installs it)"; exit 1; }
[ -x "$MS" ] || { echo "test_tui: $MS is not built"; exit 1; }

# a Meta-State model with SSE heads (the one tests/run.sh makes, else our own)
M=$B/golden/B.safetensors
if [ ! -f "$M" ]; then
    M=$T/B.safetensors
    $PY scripts/make_random.py --layers 2 --embd 128 --heads 2 --head-size 64 --ptok 300 --sse-heads 2 \
        --lora 16,12,8,20 --vocab 256 --tokenizer bytes --seed 2 "$M" >/dev/null || { echo "test_tui: cannot make $M"; exit 1; }
fi

# start NAME TERM COMMAND...: metastate in a fresh 100x40 tmux window; after it
# exits the shell writes its status and the terminal modes into $T/NAME.*
start() {
    name=$1; term=$2; shift 2
    $TM kill-server >/dev/null 2>&1
    TM="tmux -L ms-tui-$$-$name -f /dev/null"   # a server of its own for each start
    cat >"$T/$name.sh" <<EOF
export LANG=C.UTF-8 LC_ALL=C.UTF-8 HOME=$T TERM=$term
trap : INT   # Ctrl-C reaches this shell too (one process group): it must outlive metastate
$*
echo \$? >$T/$name.rc
stty -a >$T/$name.stty 2>&1
echo "SHELL-BACK"
sleep 120
EOF
    $TM new-session -d -s t -x 100 -y 40 "sh $T/$name.sh"
}
screen() { $TM capture-pane -t t -p; }
screen_e() { $TM capture-pane -t t -p -e; }
keys() { $TM send-keys -t t "$@"; }
# Every wait is a poll with a limit; TUI_SLOW multiplies the limits (make
# test-debug sets it: the ASan build is several times slower).
SLOW=${TUI_SLOW:-1}
# retry SECONDS CMD...: until CMD succeeds
retry() {
    n=0; lim=$(( $1 * 10 * SLOW )); shift
    while [ $n -lt $lim ]; do
        "$@" && return 0
        sleep 0.1; n=$((n + 1))
    done
    return 1
}
shows() { screen | grep -qE -- "$1"; }
gone() { ! screen | grep -qE -- "$1"; }
# wait_for PATTERN [SECONDS]: until the screen shows PATTERN (grep -E)
wait_for() { retry "${2:-10}" shows "$1"; }
wait_rc() {   # wait_rc NAME: until the program exited; prints its status
    n=0
    while [ $n -lt $((100 * SLOW)) ] && [ ! -s "$T/$1.rc" ]; do sleep 0.1; n=$((n + 1)); done
    cat "$T/$1.rc" 2>/dev/null || echo none
}
alt() { $TM display -p -t t '#{alternate_on}'; }
sane() {   # the terminal modes after exit: echo and icanon on
    grep -qE '(^| )icanon' "$T/$1.stty" && grep -qE '(^| )echo( |$)' "$T/$1.stty"
}

echo "== the full-screen view, TERM=xterm-256color, $M"
start main xterm-256color "$MS $M"
wait_for 'main:0> *$' 10
check $? "it starts: the prompt main:0> on the last line"
[ "$(alt)" = 1 ]; check $? "alternate screen on while it runs"
screen | grep -q ' overview ' && screen | grep -q ' zoom L0.H0 SSE head' && screen | grep -q ' tokens main @ 0'
check $? "panels drawn: tokens, overview, zoom of L0.H0 (an SSE head)"
keys 'feed In the beginning' Enter
wait_for 'main:16> *$'
check $? "feed runs; the prompt moves to position 16"
screen | grep -q 'In the beginning' && screen | grep -q 'tokens main @ 16'
check $? "the token stream shows the text and the position"
screen | grep -q 'next top 8' && screen | grep -qE '^ +[0-9.]+% '
check $? "the next-token panel lists probabilities"
screen_e | grep -q '38;5;' && screen_e | grep -q '48;5;'
check $? "256-colour escape codes in the heatmap cells (capture-pane -e)"
keys 'view sse 1' Enter
wait_for 'zoom SSE of layer 1'
check $? "view sse 1 shows the SSE heads of layer 1"
screen | grep -qE '\|Ks.e\|' && screen | grep -q 'relu(s)'
check $? "the parameter tokens the read drives are listed"
keys 'view 0.1' Enter
wait_for 'zoom L0.H1 SSE head'
check $? "view 0.1 zooms into L0.H1"
keys Tab
sleep 0.3
keys Down
wait_for 'zoom L1.H1'
check $? "Tab into the overview, Down moves to layer 1 (zoom L1.H1)"
keys Escape
sleep 0.2
keys '?'
wait_for 'Tab, Shift-Tab'
check $? "? on an empty line shows the keys"
keys x
retry 5 gone 'Tab, Shift-Tab'
check $? "any key closes the help"
keys 'vie' Tab
wait_for 'main:16> view$'
check $? "tab completion: 'vie' + Tab gives 'view '"
keys C-u 'scale sym' Enter
wait_for 'scale sym' 5
check $? "scale sym shows in the status line"
keys 'gen 200000' Enter
wait_for 'running gen' 10
check $? "a long gen runs live: the status says so while tokens come"
sleep 1
p1=$(screen | grep -o 'tokens main @ [0-9]*' | grep -o '[0-9]*$')
sleep 1
p2=$(screen | grep -o 'tokens main @ [0-9]*' | grep -o '[0-9]*$')
[ -n "$p1" ] && [ -n "$p2" ] && [ "$p2" -gt "$p1" ]
check $? "the panels follow the run: position $p1, a second later $p2"
keys C-c
wait_for 'interrupted after' 10
check $? "Ctrl-C stops it between tokens"
wait_for 'main:[0-9]+> *$' 5
check $? "and the prompt is back"
$TM resize-window -t t -x 40 -y 12
small() {
    s=$(screen)
    [ "$(echo "$s" | wc -l)" -le 12 ] && echo "$s" | tail -1 | grep -qE '^main:[0-9]+>' && echo "$s" | grep -q 'tokens main'
}
retry 3 small
check $? "resized to 40x12: relaid out (tokens on top, the prompt on the last line)"
echo "$s" | sed 's/^/        | /'
$TM resize-window -t t -x 100 -y 40
big() { screen | grep -q ' overview ' && screen | tail -1 | grep -qE '^main:[0-9]+>'; }
retry 3 big
check $? "resized back to 100x40: the overview is back"
keys 'quit' Enter
rc=$(wait_rc main)
[ "$rc" = 0 ]; check $? "quit exits with status 0 (got $rc)"
wait_for SHELL-BACK 5
[ "$(alt)" = 0 ] && sane main; check $? "after quit: normal screen, echo and icanon restored"

echo "== Ctrl-D, Ctrl-C twice, a crash, SIGTERM"
start ctrld xterm-256color "$MS $TINY"
wait_for 'main:0> *$' 10 && keys C-d
rc=$(wait_rc ctrld); wait_for SHELL-BACK 5
[ "$rc" = 0 ] && [ "$(alt)" = 0 ] && sane ctrld; check $? "Ctrl-D quits (status $rc), terminal restored"
start ctrlc xterm-256color "$MS $TINY"
wait_for 'main:0> *$' 10 && keys C-c && sleep 0.3 && keys C-c
wait_for 'Quit metastate\? \(y/n\)' 5
check $? "Ctrl-C twice at an idle prompt asks before quitting"
keys y
rc=$(wait_rc ctrlc); wait_for SHELL-BACK 5
[ "$rc" = 0 ] && [ "$(alt)" = 0 ] && sane ctrlc; check $? "y quits (status $rc), terminal restored"
start crash xterm-256color "$MS $TINY"
wait_for 'main:0> *$' 10
pkill -SEGV -f "^$MS $TINY\$" 2>/dev/null || kill -SEGV "$($TM display -p -t t '#{pane_pid}')"
rc=$(wait_rc crash); wait_for SHELL-BACK 5
screen | grep -q 'crashed; the terminal was restored'
check $? "SIGSEGV: the crash handler says the terminal was restored"
[ "$rc" = 139 ] && [ "$(alt)" = 0 ] && sane crash; check $? "  and it was: status $rc (re-raised), normal screen, echo and icanon on"
start term xterm-256color "$MS $TINY"
wait_for 'main:0> *$' 10
pkill -TERM -f "^$MS $TINY\$"
rc=$(wait_rc term); wait_for SHELL-BACK 5
[ "$rc" = 143 ] && [ "$(alt)" = 0 ] && sane term; check $? "SIGTERM: status $rc, terminal restored"

echo "== colour fallbacks"
start x8 xterm "$MS $M -c 'feed hi'"
wait_for 'main:2> *$' 10
e=$(screen_e)
echo "$e" | grep -qE '\[4[0-7]m' && ! echo "$e" | grep -q '48;5;'
check $? "TERM=xterm: 8-colour codes only (no 256-colour codes)"
keys C-d; wait_rc x8 >/dev/null
start nocolor xterm-256color "NO_COLOR=1 $MS $M -c 'feed hi'"
wait_for 'main:2> *$' 10
e=$(screen_e)
! echo "$e" | grep -qE '\[(3|4)8;5;|\[3[0-7]m|\[4[0-7]m' && screen | grep -q ' mono ' && screen | grep -qE '[.:;,=%#@+-]{3}'
check $? "NO_COLOR=1: no colour codes at all; the monochrome glyph ramp and 'mono' in the status line"
screen | grep -qE '^L[01] [>*]'
check $? "  SSE heads and the selection marked with ASCII signs (* and >)"
keys C-d; wait_rc nocolor >/dev/null
start nocolor2 xterm-256color "$MS $M --no-color -c 'feed hi'"
wait_for 'main:2> *$' 10
! screen_e | grep -qE '\[(3|4)8;5;|\[4[0-7]m'
check $? "--no-color: no colour codes"
keys C-d; wait_rc nocolor2 >/dev/null
start dumb dumb "$MS $M"
wait_for 'main:0> *$' 10
keys 'feed In the beginning' Enter 'view 0.0' Enter
wait_for 'zoom L0.H0' 10
[ "$(alt)" = 0 ] && screen | grep -qE '[,.:;=+%#@-]{4}' && ! screen_e | grep -qE '\[(3|4)8;5;'
check $? "TERM=dumb: line mode; view prints the head with the glyph ramp, no colour"
keys C-d; wait_rc dumb >/dev/null
start plain xterm-256color "$MS $TINY --plain"
wait_for 'main:0> *$' 10
[ "$(alt)" = 0 ]; check $? "--plain: line mode on a terminal (no alternate screen)"
keys C-d; wait_rc plain >/dev/null

echo "== the tour"
start tour xterm-256color "$MS $M -x scripts/tour.ms"
wait_for 'tour 1/[0-9]+: A new state is all zeros' 10
check $? "-x scripts/tour.ms: step 1 is shown and the tour waits"
keys Enter
wait_for 'tour 2/[0-9]+: Zoom into layer 0' 10
check $? "Enter: the verse is fed and step 2 is shown"
screen | grep -q 'In the beginning God created'
check $? "  the token stream holds the verse"
steps=$(screen | grep -o 'tour 2/[0-9]*' | head -1 | cut -d/ -f2)
i=2
while [ $i -lt "${steps:-0}" ]; do keys Enter; i=$((i + 1)); wait_for "tour $i/" 20 || break; done
[ "$i" = "$steps" ]; check $? "Enter through all $steps steps"
keys Enter
wait_for 'the tour is over' 20
check $? "the tour ends"
screen | grep -q 'every step matches its recorded checksums'
check $? "  its replay --verify matched every step"
keys C-d; wait_rc tour >/dev/null
"$MS" "$M" --batch -x scripts/tour.ms >"$T/tour.out" 2>&1
rc=$?
[ $rc = 0 ] && grep -q 'every step matches' "$T/tour.out"
check $? "--batch -x scripts/tour.ms runs straight through (status $rc)"
"$MS" "$TINY" --batch -x scripts/tour.ms >"$T/tour2.out" 2>&1
check $? "  also on the tiny plain RWKV-7 model"

echo
[ $fails = 0 ] && echo "test_tui: all checks passed" || echo "test_tui: $fails failed"
[ $fails = 0 ]
