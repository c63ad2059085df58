#!/bin/bash
# Healthy when the Thrift v1 server answers getTableNames() with a table
# list (binary protocol, buffered transport): the whole path Thrift server
# -> master -> regionserver works, not just an open port.
exec 3<>/dev/tcp/127.0.0.1/9090 || exit 1
printf '\x80\x01\x00\x01\x00\x00\x00\x0dgetTableNames\x00\x00\x00\x00\x00' >&3
reply=$(head -c 28 <&3 | od -An -tx1 | tr -d ' \n')
[[ ${reply:0:16} == 800100020000000d && ${reply:50:6} == 0f0000 ]]
