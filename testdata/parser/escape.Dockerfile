# escape=`
# The backtick escapes: backslashes are plain characters, as on Windows.
FROM mcr.microsoft.com/windows/nanoserver
ENV DIR=C:\app\
WORKDIR $DIR
RUN echo one `
    && echo two
COPY app\bin\ C:\app\bin\
RUN echo `$NAME is literal, $NAME is not
LABEL path="C:\Program Files\$NAME"
LABEL lit=`$NAME quoted="`$NAME"
