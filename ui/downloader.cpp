#include "ui/downloader.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFileInfo>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>

namespace automod::ui {

FileDownload::FileDownload(QObject* parent) : QObject(parent), network_(new QNetworkAccessManager(this)) {}

FileDownload::~FileDownload() {
  if (reply_) {
    reply_->disconnect(this);
    reply_->abort();
  }
}

bool FileDownload::start(const QUrl& url, const QString& destination, QString* error) {
  auto fail_now = [&](const QString& why) {
    if (error) *error = why;
    return false;
  };
  if (reply_) return fail_now(tr("a download is already running"));
  if (!QDir().mkpath(QFileInfo(destination).absolutePath()))
    return fail_now(tr("cannot create the folder %1").arg(QFileInfo(destination).absolutePath()));
  destination_ = destination;
  part_.setFileName(partPath(destination));
  if (!part_.open(QIODevice::ReadWrite))
    return fail_now(tr("cannot write %1: %2").arg(part_.fileName(), part_.errorString()));
  offset_ = part_.size();
  part_.seek(offset_);
  received_ = 0;
  total_ = -1;
  cancelled_ = false;
  checked_status_ = false;
  resumed_ = offset_ > 0;
  QNetworkRequest request(url);
  request.setAttribute(QNetworkRequest::RedirectPolicyAttribute, QNetworkRequest::NoLessSafeRedirectPolicy);
  if (offset_ > 0) request.setRawHeader("Range", "bytes=" + QByteArray::number(offset_) + "-");
  reply_ = network_->get(request);
  connect(reply_, &QNetworkReply::readyRead, this, &FileDownload::onReadyRead);
  connect(reply_, &QNetworkReply::finished, this, &FileDownload::onFinished);
  return true;
}

void FileDownload::cancel() {
  if (!reply_) return;
  cancelled_ = true;
  reply_->abort();  // finished() follows
}

void FileDownload::onReadyRead() {
  if (!reply_) return;
  if (!checked_status_) {
    checked_status_ = true;
    const int status = reply_->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    // Asked for the rest but got the whole file (the server ignores ranges): start the part again.
    if (offset_ > 0 && status == 200) {
      part_.resize(0);
      part_.seek(0);
      offset_ = 0;
      resumed_ = false;
    }
    const qint64 length = reply_->header(QNetworkRequest::ContentLengthHeader).toLongLong();
    if (length > 0) total_ = offset_ + length;
  }
  const QByteArray bytes = reply_->readAll();
  if (part_.write(bytes) != bytes.size()) {
    fail(tr("cannot write %1: %2 (is the disk full?); the part downloaded so far is kept")
             .arg(part_.fileName(), part_.errorString()));
    return;
  }
  received_ += bytes.size();
  Q_EMIT progress(offset_ + received_, total_);
}

void FileDownload::fail(const QString& message) {
  if (reply_) {
    reply_->disconnect(this);
    reply_->abort();
    reply_->deleteLater();
    reply_ = nullptr;
  }
  part_.close();
  Q_EMIT finished(false, message, {}, resumed_);
}

void FileDownload::onFinished() {
  if (!reply_) return;
  QNetworkReply* reply = reply_;
  reply_ = nullptr;
  reply->deleteLater();
  if (reply->bytesAvailable() > 0) {
    reply_ = reply;  // onReadyRead reads through reply_
    onReadyRead();
    if (!reply_) return;  // it failed
    reply_ = nullptr;
  }
  part_.flush();
  const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
  if (cancelled_) {
    part_.close();
    Q_EMIT finished(false, tr("cancelled; %1 MB are kept for the next start").arg(double(part_.size()) / 1e6, 0, 'f', 1),
                    {}, resumed_);
    return;
  }
  if (reply->error() != QNetworkReply::NoError || (status != 200 && status != 206)) {
    const qint64 kept = part_.size();
    part_.close();
    QString why = reply->error() != QNetworkReply::NoError
                      ? networkErrorSentence(reply->error(), reply->url().host(), reply->errorString())
                      : tr("the server answered %1 %2")
                            .arg(status)
                            .arg(reply->attribute(QNetworkRequest::HttpReasonPhraseAttribute).toString());
    if (kept > 0) why += tr("; %1 MB are kept, Download continues from there").arg(double(kept) / 1e6, 0, 'f', 1);
    Q_EMIT finished(false, why, {}, resumed_);
    return;
  }
  if (total_ > 0 && part_.size() != total_) {
    const qint64 kept = part_.size();
    part_.close();
    Q_EMIT finished(false,
                    tr("the transfer stopped at %1 of %2 MB; Download continues from there")
                        .arg(double(kept) / 1e6, 0, 'f', 1)
                        .arg(double(total_) / 1e6, 0, 'f', 1),
                    {}, resumed_);
    return;
  }
  // Complete: hash it, then put it in place.
  part_.seek(0);
  QCryptographicHash hash(QCryptographicHash::Sha256);
  if (!hash.addData(&part_)) {
    part_.close();
    Q_EMIT finished(false, tr("cannot read back %1").arg(part_.fileName()), {}, resumed_);
    return;
  }
  part_.close();
  QFile::remove(destination_);
  if (!QFile::rename(part_.fileName(), destination_)) {
    Q_EMIT finished(false, tr("cannot rename %1 to %2").arg(part_.fileName(), destination_), {}, resumed_);
    return;
  }
  Q_EMIT finished(true, {}, QString::fromLatin1(hash.result().toHex()), resumed_);
}

QString networkErrorSentence(int error, const QString& host, const QString& detail) {
  switch (QNetworkReply::NetworkError(error)) {
    case QNetworkReply::HostNotFoundError:
    case QNetworkReply::TemporaryNetworkFailureError:
    case QNetworkReply::NetworkSessionFailedError:
    case QNetworkReply::UnknownNetworkError:
      return QObject::tr("%1 cannot be reached: you seem to be offline (%2)").arg(host, detail);
    case QNetworkReply::ConnectionRefusedError:
      return QObject::tr("%1 refused the connection").arg(host);
    case QNetworkReply::RemoteHostClosedError:
      return QObject::tr("%1 closed the connection before the file was complete").arg(host);
    case QNetworkReply::TimeoutError:
      return QObject::tr("%1 did not answer in time").arg(host);
    case QNetworkReply::ContentNotFoundError:
      return QObject::tr("%1 does not have the file (404)").arg(host);
    case QNetworkReply::SslHandshakeFailedError:
      return QObject::tr("the secure connection to %1 failed (%2)").arg(host, detail);
    default:
      return QObject::tr("the download from %1 failed: %2").arg(host, detail);
  }
}

}  // namespace automod::ui
