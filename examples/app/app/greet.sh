#!/bin/sh
# greet.sh WORD: writes the page the demo serves.
printf '<h1>%s from builder</h1>\n' "${1:-hello}"
