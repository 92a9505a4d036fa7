# syntax=docker/dockerfile:1
# Every instruction once, in a single stage.
FROM alpine:3.20 AS base
ARG USER_ID=1000 GREETING="hello ${NAME}"
ENV APP_HOME=/srv/app MSG="hi $NAME" OTHER=$APP_HOME
LABEL org.example.version="$VERSION" description='single $NAME' "with space"=yes
MAINTAINER Jane Doe <jane@example.com>
WORKDIR $HOME/work
USER ${USER_ID:-0}:${GROUP:-0}
RUN apk add --no-cache curl && echo $NAME
COPY --chown=$USER_ID:0 --chmod=0644 --link src/ "$HOME/dst/"
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar.gz /opt/
ADD --keep-git-dir=true --unpack=false app.tar.gz /opt/${NAME}/
EXPOSE 80 $PORT/tcp
VOLUME /data $HOME/cache
VOLUME ["/var/log", "$NAME"]
STOPSIGNAL SIGTERM
HEALTHCHECK CMD curl -f http://localhost/ || exit 1
SHELL ["/bin/sh", "-eu", "-c"]
ONBUILD COPY . /app/src
CMD ["serve", "--port", "$PORT"]
ENTRYPOINT exec /usr/bin/app
