#pragma once
// One file fetched over HTTP(S) into a folder, resumable: the bytes go to "<file>.part" and a later
// start asks the server for the rest (a Range request); the finished file is renamed into place and
// its SHA-256 computed. Cancelling keeps the part for the next start.
#include <QFile>
#include <QNetworkReply>
#include <QObject>
#include <QPointer>
#include <QUrl>

class QNetworkAccessManager;

namespace automod::ui {

class FileDownload : public QObject {
  Q_OBJECT
 public:
  explicit FileDownload(QObject* parent = nullptr);
  ~FileDownload() override;

  /// Fetches `url` into `destination` (its folder is created), resuming from destination.part when
  /// it exists. False (and nothing started) when a download is already running or the part cannot be
  /// opened; `error` says why.
  bool start(const QUrl& url, const QString& destination, QString* error = nullptr);
  /// Stops the transfer; the part stays for a later start. finished(false, "cancelled") follows.
  void cancel();
  bool isRunning() const { return reply_ != nullptr; }
  /// Where the bytes go while downloading.
  static QString partPath(const QString& destination) { return destination + ".part"; }

 Q_SIGNALS:
  /// Bytes of the whole file received so far, and its size (−1 while unknown).
  void progress(qint64 received, qint64 total);
  /// ok: the file is at its destination with this SHA-256 (hex). Otherwise `message` says why in a
  /// sentence (offline, the server's answer, a full disk, "cancelled"); resumed says whether the
  /// transfer continued a part.
  void finished(bool ok, const QString& message, const QString& sha256, bool resumed);

 private:
  void onReadyRead();
  void onFinished();
  void fail(const QString& message);

  QNetworkAccessManager* network_;
  QPointer<QNetworkReply> reply_;
  QFile part_;
  QString destination_;
  qint64 offset_ = 0;     // bytes of the part before this transfer
  qint64 received_ = 0;   // bytes written in this transfer
  qint64 total_ = -1;
  bool cancelled_ = false, resumed_ = false, checked_status_ = false;
};

/// "You seem to be offline" and similar sentences for a network error (QNetworkReply::NetworkError).
QString networkErrorSentence(int error, const QString& host, const QString& detail);

}  // namespace automod::ui
