# EXPOSE expands variables and splits the result into words; BuildKit sorts
# the ports as written before expanding them. EXTRA is declared but the
# fixed test env does not hold it, so it expands to nothing.
FROM alpine
ARG EXTRA="9000 9001/udp"
EXPOSE 80 ${PORT}/tcp 53/udp
EXPOSE $PORTS 7000-7010 $EXTRA
EXPOSE "${UNSET:-443}"
