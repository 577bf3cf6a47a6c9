#!/usr/bin/env bash
# Remakes the READMEs' screenshots (docs/screenshot.png, docs/screenshot-es.png):
# ana's window connected, bob's offline with a message waiting. A scene
# played on a virtual display (Xvfb :97, ports 6401-6402): a server, two
# headless classmates, two windows driven with xdotool, and bob's
# connection cut by killing the mitm proxy it goes through.
#   scripts/screenshots.sh            both languages
#   scripts/screenshots.sh en OUT.png one
# Needs what `make deps` installs (Xvfb, xdotool, ImageMagick).
set -u
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  "$0" en docs/screenshot.png && exec "$0" es docs/screenshot-es.png
fi
lang=$1; out=$(realpath "$2")
cargo build -q -p chat-server -p chat-client --example mitm || exit 1
bin=$(pwd)/target/debug
dir=$(mktemp -d); cd "$dir"
num=97; export DISPLAY=:$num TZ=America/Sao_Paulo
Xvfb :$num -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & xvfb=$!
sleep 1
$bin/chat-server --port 6401 --memory --key-file chat.key >server.out 2>server.log < /dev/null & server=$!
sleep 0.5
$bin/examples/mitm --listen 127.0.0.1:6402 --to 127.0.0.1:6401 >/dev/null 2>&1 & mitm=$!
exec 3> >($bin/chat-client --headless --nick dave --port 6401 --key-file chat.key --state-dir st/dave >dave.out 2>&1)
exec 4> >($bin/chat-client --headless --nick carol --port 6401 --key-file chat.key --state-dir st/carol >carol.out 2>&1)
sleep 1
if [ "$lang" = es ]; then
  t=("hola a todos" "el ejercicio 3 empieza a las 10" "¿alguien ha creado ya la clave compartida?" "sí: 'make key', y luego pasad chat.key en un pendrive"
     "/msg ana ¿dijo bob a qué hora llegaría?" "/msg carol hacia las 10:30, creo" "¡ya estoy! perdón, el autobús se averió cerca de la estación" "¿sigue ahí alguien?" "bienvenido, bob")
else
  t=("hi all" "exercise 3 starts at 10" "has anyone made the shared key yet?" "yes: 'make key', then pass chat.key around on a USB stick"
     "/msg ana did bob say when he'd arrive?" "/msg carol around 10:30 I think" "back! sorry, the bus broke down near the station" "is anyone still there?" "welcome back bob")
fi
$bin/chat-client --lang $lang --nick ana --port 6401 --key-file chat.key --state-dir st/ana >/dev/null 2>&1 & ana=$!
$bin/chat-client --lang $lang --nick bob --port 6402 --key-file chat.key --state-dir st/bob --retry-secs 5 >/dev/null 2>&1 & bob=$!
sleep 2
wa=$(xdotool search --sync --name ana | head -1); wb=$(xdotool search --sync --name bob | head -1)
xdotool windowsize --sync $wa 500 370 windowmove --sync $wa 0 0
xdotool windowsize --sync $wb 500 370 windowmove --sync $wb 520 0
type_in() { xdotool windowfocus --sync $1; xdotool type --delay 15 -- "$2"; xdotool key Return; sleep 0.6; }
echo "${t[0]}" >&4; sleep 0.4; echo "${t[1]}" >&3; sleep 0.4
echo "${t[2]}" >&3; sleep 0.6
type_in $wa "${t[3]}"
echo "${t[4]}" >&4; sleep 0.6
type_in $wa "${t[5]}"
type_in $wb "${t[6]}"
sleep 0.5; kill $mitm; sleep 0.6
type_in $wb "${t[7]}"
sleep 0.4; echo "${t[8]}" >&3; sleep 1.2
import -window root full.png
convert full.png -crop 500x370+0+0 +repage a.png
convert full.png -crop 500x370+520+0 +repage b.png
convert a.png -size 4x370 xc:black b.png +append "$out"
echo "screenshot: $out"
kill $ana $bob $server 2>/dev/null; exec 3>&- 4>&-; sleep 0.5; kill $xvfb
rm -rf "$dir"
