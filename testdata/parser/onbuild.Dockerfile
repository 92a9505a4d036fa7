# ONBUILD keeps its trigger as written, variables included: they expand in
# the build that uses this image.
FROM alpine
ONBUILD COPY . /app/$NAME
onbuild   RUN make \
    install
ONBUILD ADD --chown=app https://example.com/x.tgz /x/
