# Heredocs: a RUN script, <<- with tabs removed, a program fed by a heredoc,
# COPY of inline files with and without expansion. BuildKit expands a COPY
# heredoc only when the delimiter is unquoted, keeps quotes in it, and never
# expands a RUN heredoc (the shell does).
FROM alpine
RUN <<EOF
set -e
echo "building $NAME"
EOF
RUN <<-EOT
	echo tabs are gone
		echo both of them
	EOT
RUN python3 <<PY > /out.txt
print("hi")
PY
COPY <<conf.ini <<"raw.txt" /etc/app/
name="$NAME" home=${HOME}
conf.ini
kept as $NAME
raw.txt
RUN cat <<A && cat <<B
first
A
second
B
