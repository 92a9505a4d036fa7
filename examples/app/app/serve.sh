#!/bin/sh
# serve.sh [HTTPD FLAGS]: serves $APP_HOME with busybox httpd on $APP_PORT.
exec httpd -p "${APP_PORT:-8080}" -h "${APP_HOME:-.}" "$@"
