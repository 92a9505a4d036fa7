# HEALTHCHECK with every option, the exec form, and NONE. Its command is
# never expanded (the image keeps it as written).
FROM alpine
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s --retries=3 \
    CMD wget -q -O- http://localhost:$PORT/ || exit 1
HEALTHCHECK CMD ["/bin/check", "$PORT"]
HEALTHCHECK NONE
